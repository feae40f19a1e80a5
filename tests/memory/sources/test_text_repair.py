"""Text that cannot be stored as it is (a lone surrogate, bytes that are not UTF-8) is
repaired to U+FFFD with a warning naming file and line, the same way for every source kind."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
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


# --- every source kind: the same lone surrogate, the same repair ---------------------------

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
HALF = "\\ud83d"  # as JSON writes it: the first half of an emoji, cut


def _jsonl(root: Path) -> Path:
    path = root / "chat.jsonl"
    path.write_text(f'{{"id": "c", "ts": "{T0.isoformat()}", "text": "a {HALF}"}}\n')
    return path


def _mbox(root: Path) -> Path:
    path = root / "mail.mbox"
    path.write_bytes(
        b"From a@example.com Fri Mar  1 12:00:00 2024\nFrom: a@example.com\n"
        b"Subject: =?utf-8?q?x?= \\ud800 cut\nDate: Fri, 1 Mar 2024 12:00:00 +0000\n\nbody\n\n"
    )
    return path


def _maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / "md" / sub).mkdir(parents=True)
    (root / "md" / "cur" / "1709294400.M1P1.host:2,S").write_bytes(
        b"From: a@example.com\nSubject: =?utf-8?q?x?= \\ud800 cut\n"
        b"Date: Fri, 1 Mar 2024 12:00:00 +0000\n\nbody\n"
    )
    return root / "md"


def _notes(root: Path) -> Path:
    (root / "notes").mkdir()
    # a surrogate written out as UTF-8 bytes (CESU-8, what some tools write): not UTF-8
    (root / "notes" / "2024-03-01.md").write_bytes("a \ud83d cut".encode("utf-8", "surrogatepass"))
    return root / "notes"


def _git(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    run_git(repo, "init", "-q")
    tree = run_git(repo, "write-tree")
    raw = (
        f"tree {tree}\nauthor A <a@example.com> 1709294400 +0000\n"
        "committer A <a@example.com> 1709294400 +0000\n\n"
    ).encode() + "a \ud83d cut\n".encode("utf-8", "surrogatepass")
    commit = run_git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input=raw)
    run_git(repo, "update-ref", "refs/heads/main", commit)
    return repo


def _slack(root: Path) -> Path:
    folder = root / "slack"
    (folder / "general").mkdir(parents=True)
    (folder / "users.json").write_text(f'[{{"id": "U1", "name": "al{HALF}"}}]')
    (folder / "channels.json").write_text('[{"id": "C1", "name": "general"}]')
    (folder / "general" / "2024-03-01.json").write_text(
        f'[{{"type": "message", "user": "U1", "text": "a {HALF}", "ts": "{T0.timestamp():.0f}.0"}}]'
    )
    return folder


def _telegram(root: Path) -> Path:
    path = root / "result.json"
    path.write_text(
        f'{{"chats": {{"list": [{{"name": "B{HALF}", "type": "personal_chat", "id": 1, '
        f'"messages": [{{"id": 1, "type": "message", "date": "2024-03-01T12:00:00", '
        f'"date_unixtime": "{T0.timestamp():.0f}", "from": "A", "text": "a {HALF}"}}]}}]}}}}'
    )
    return path


def _chatgpt(root: Path) -> Path:
    path = root / "conversations.json"
    at = T0.timestamp()
    message = {
        "id": "q",
        "author": {"role": "user"},
        "create_time": at,
        "content": {"content_type": "text", "parts": ["PART"]},
    }
    mapping = {
        "r": {"id": "r", "message": None, "parent": None, "children": ["q"]},
        "q": {"id": "q", "message": message, "parent": "r", "children": []},
    }
    body = [{"title": "T", "create_time": at, "conversation_id": "c1", "mapping": mapping}]
    path.write_text(json.dumps(body).replace('"PART"', f'"a {HALF}"'))
    return path


def _browser(root: Path) -> Path:
    import sqlite3

    path = root / "places.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT, title TEXT)")
    db.execute(
        "CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, from_visit INTEGER,"
        " place_id INTEGER, visit_date INTEGER, visit_type INTEGER)"
    )
    cut = "a \ud83d cut".encode("utf-8", "surrogatepass")  # SQLite stores the bytes as given
    db.execute("INSERT INTO moz_places VALUES (1, 'https://x.org/', CAST(? AS TEXT))", (cut,))
    db.execute("INSERT INTO moz_historyvisits VALUES (1, 0, 1, ?, 1)", (int(T0.timestamp() * 1e6),))
    db.commit()
    db.close()
    return path


BUILDERS = {
    "jsonl": _jsonl,
    "mbox": _mbox,
    "maildir": _maildir,
    "notes": _notes,
    "git": _git,
    "slack": _slack,
    "telegram": _telegram,
    "chatgpt": _chatgpt,
    "browser": _browser,
}


def test_every_built_in_kind_is_checked_here() -> None:
    """A new source kind must show here that it repairs text the same way."""
    from importlib.metadata import entry_points

    built_in = {
        p.name for p in entry_points(group="softcopy.sources") if p.value.startswith("softcopy.")
    }
    assert built_in == set(BUILDERS)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_kind_repairs_a_lone_surrogate_with_a_warning_naming_the_file(
    home: Path, kind: str
) -> None:
    """Through the scan index into the database, as coverage and a run read it: the item
    indexes with U+FFFD, a `repaired` problem names the file, nothing raises."""
    from softcopy.config import SourceConfig
    from softcopy.memory.sources import load_many, open_source

    path = BUILDERS[kind](home)
    src = open_source(SourceConfig(name="s", kind=kind, path=path, options={}), UTC)
    settings = load_settings(home)
    with Session(get_engine(settings.database_url)) as session:
        scan.refresh(session, src)
        session.commit()
        problems = session.exec(select(SourceProblem)).all()
        refs = scan.days_refs(session, "s", [date(2024, 3, 1)])
    assert [(p.repaired, p.day) for p in problems] == [(True, date(2024, 3, 1))], problems
    assert str(path) in problems[0].location
    assert refs, "the repaired item is not indexed"
    by_unit: dict[str, list[str]] = {}
    for ref in refs:
        by_unit.setdefault(ref.unit, []).append(ref.locator)
    loaded = [x for _, x in load_many(src, list(by_unit.items()))]
    assert loaded and all(isinstance(x, MemoryItem) for x in loaded)
    assert any(x.repaired and "\ufffd" in x.title + x.text for x in loaded)  # type: ignore[union-attr]
    for item in loaded:
        json.dumps(item.to_record(), ensure_ascii=False).encode()  # storable as UTF-8


def test_canonical_repairs_nul_which_postgresql_cannot_store() -> None:
    fixed = canonical("t\x00", "a\x00b", {"k\x00": "v\x00"})
    assert fixed.repaired and (fixed.title, fixed.text, fixed.meta) == (
        "t\ufffd",
        "a\ufffdb",
        {"k\ufffd": "v\ufffd"},
    )
    literal = canonical("", "a backslash-u0000 written out: \\u0000", {})
    assert not literal.repaired and literal.text.endswith("\\u0000")


def test_a_nul_in_a_jsonl_record_is_repaired_and_the_scan_stores_it(home: Path) -> None:
    """On PostgreSQL a NUL in an item id made every scan a DataError traceback."""
    path = home / "chat.jsonl"
    path.write_text(
        '{"id": "a\\u0000b", "ts": "2024-03-01T10:00:00Z", "text": "x\\u0000y", "t\\u0000": 1}\n'
        '{"id": "c", "ts": "2024-03-01T1\\u00001:00Z", "text": "a NUL in its time"}\n'
    )
    src = JsonlSource(name="chat", path=path, tz=UTC, options={})
    settings = load_settings(home)
    with Session(get_engine(settings.database_url)) as session:
        scan.refresh(session, src)
        session.commit()
        problems = session.exec(select(SourceProblem)).all()
        [ref] = scan.days_refs(session, "chat", [date(2024, 3, 1)])
    assert sorted((p.repaired, p.day) for p in problems) == [
        (False, None),  # the time cannot be told: a bad record, its reason storable
        (True, date(2024, 3, 1)),
    ]
    assert ref.item_id == "jsonl:chat.jsonl:a\ufffdb"
    [item] = src.load("chat.jsonl", [ref.locator])
    assert isinstance(item, MemoryItem) and item.text == "x\ufffdy" and item.repaired
    assert item.content_hash == ref.content_hash
