"""Text that cannot be stored as it is (a lone surrogate, bytes that are not UTF-8) is
repaired to U+FFFD with a warning naming file and line, the same way for every source kind."""

from __future__ import annotations

import json
import os
from datetime import UTC, date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.memory import scan
from softcopy.memory.items import MemoryItem, canonical, content_hash
from softcopy.memory.sources.jsonl import JsonlSource
from softcopy.memory.sources.mbox import MboxSource
from softcopy.memory.sources.notes import NotesSource
from softcopy.memory.tables import SourceProblem
from tests.memory.sources.test_git import run_git

CUT_EMOJI = '"\\ud83d cut"'  # JSON for the first half of an emoji and no second half


def test_canonical_repairs_lone_surrogates_everywhere_and_hashes_stably() -> None:
    fixed = canonical("t\ud800", "x\udfffy", {"k\ud83d": ["\udc00", 1]})
    assert fixed.repaired
    assert (fixed.title, fixed.text, fixed.meta) == (
        "t\ufffd",
        "x\ufffdy",
        {"k\ufffd": ["\ufffd", 1]},
    )
    assert fixed.content_hash == content_hash("t\ufffd", "x\ufffdy", {"k\ufffd": ["\ufffd", 1]})
    clean = canonical("t", "a 😀 whole emoji", {})
    assert not clean.repaired and clean.text == "a 😀 whole emoji"


def test_jsonl_lone_surrogate_is_indexed_repaired_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(
        '{"id": "ok", "ts": "2024-03-01T10:00:00Z", "text": "fine"}\n'
        f'{{"id": "cut", "ts": "2024-03-01T11:00:00Z", "text": {CUT_EMOJI}, '
        f'"title": {CUT_EMOJI}, "meta": {{{CUT_EMOJI}: {CUT_EMOJI}}}}}\n'
        f'{{"id": {CUT_EMOJI}, "ts": "2024-03-01T12:00:00Z", "text": "id cut"}}\n'
    )
    src = JsonlSource(name="chat", path=path, tz=UTC, options={})
    found = src.scan_unit("chat.jsonl")
    assert found.problems == [] and len(found.refs) == 3
    assert [(r.path, r.where, r.day) for r in found.repairs] == [
        (str(path), "line 2", date(2024, 3, 1)),
        (str(path), "line 3", date(2024, 3, 1)),
    ]
    loaded = {i.item_id: i for i in src.load("chat.jsonl", [r.locator for r in found.refs])}
    cut = loaded["jsonl:chat.jsonl:cut"]
    assert isinstance(cut, MemoryItem) and cut.repaired
    assert (cut.text, cut.title, cut.meta) == (
        "\ufffd cut",
        "\ufffd cut",
        {"meta": {"\ufffd cut": "\ufffd cut"}},
    )
    assert "jsonl:chat.jsonl:\ufffd cut" in loaded
    assert {(r.item_id, r.content_hash) for r in found.refs} == {
        (i.item_id, i.content_hash) for i in loaded.values()
    }
    json.dumps(cut.to_record(), ensure_ascii=False).encode()  # storable as UTF-8


def test_mbox_header_that_decodes_to_a_lone_surrogate_is_repaired(tmp_path: Path) -> None:
    # Text between encoded words is read as raw-unicode-escape: a literal \ud800 in a
    # Subject becomes a lone surrogate.
    path = tmp_path / "mail.mbox"
    path.write_bytes(
        b"From ann@example.com Tue Mar  5 11:00:00 2024\n"
        b"From: ann@example.com\n"
        b"Subject: =?utf-8?q?caf=C3=A9?= \\ud800 half\n"
        b"Date: Tue, 5 Mar 2024 11:00:00 +0000\n"
        b"Message-ID: <cut@example.com>\n\nbody\n\n"
    )
    src = MboxSource(name="mail", path=path, tz=UTC, options={})
    found = src.scan_unit("mail.mbox")
    assert found.problems == []
    assert [(r.where, r.day) for r in found.repairs] == [("message 1", date(2024, 3, 5))]
    [item] = src.load("mail.mbox", [found.refs[0].locator])
    assert isinstance(item, MemoryItem) and "\ufffd" in item.title and "\ud800" not in item.title


def test_git_message_bytes_that_are_not_utf8_are_repaired_with_a_warning(
    tmp_path: Path,
) -> None:
    from softcopy.memory.sources.git import GitSource

    repo = tmp_path / "repo"
    repo.mkdir()
    run_git(repo, "init", "-q")
    tree = run_git(repo, "write-tree")
    # A charset git does not know: it passes the message bytes through as they are.
    raw = (
        f"tree {tree}\nauthor A <a@example.com> 1709294400 +0000\n"
        "committer A <a@example.com> 1709294400 +0000\nencoding no-such-charset\n\n"
    ).encode() + b"caf\xe9 crash\n"
    commit = run_git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input=raw)
    run_git(repo, "update-ref", "refs/heads/main", commit)
    src = GitSource(name="code", path=repo, tz=UTC, options={})
    found = src.scan_unit(commit)
    assert found.problems == [] and len(found.refs) == 1
    assert [(r.where, r.day) for r in found.repairs] == [(f"commit {commit}", date(2024, 3, 1))]
    [item] = src.load(commit, [commit])
    assert isinstance(item, MemoryItem) and item.title == "caf\ufffd crash"


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS refuses non-UTF-8 names")
def test_a_file_name_that_is_not_utf8_is_a_problem_of_the_source_not_a_crash(
    home: Path,
) -> None:
    notes = home / "notes"
    notes.mkdir()
    (notes / "2024-03-01.md").write_text("fine")
    with open(os.path.join(os.fsencode(notes), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"a note with a Latin-1 name")
    settings = load_settings(home)
    src = NotesSource(name="notes", path=notes, tz=UTC, options={})
    with Session(get_engine(settings.database_url)) as session:
        scan.refresh(session, src)
        session.commit()
        [problem] = session.exec(select(SourceProblem)).all()
        assert problem.day is None and not problem.repaired
        assert "caf\ufffd.md" in problem.location and "not valid UTF-8" in problem.reason
        assert scan.refresh(session, src).units_read == 0  # stable: not re-read every scan
        assert len(scan.days_refs(session, "notes", [date(2024, 3, 1)])) == 1
