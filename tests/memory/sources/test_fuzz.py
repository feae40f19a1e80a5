"""Fuzzed source parsers: whatever bytes a source holds, a scan gives items or named bad
records (and repair warnings), never another exception; what it gives can be stored as
UTF-8, and loading an item back by its locator gives the item the scan saw.

Bounded to stay fast (the whole file runs in well under 30 s): few examples, small inputs,
one git repository per module with commits written by `git hash-object` directly.
SOFTCOPY_FUZZ_SCALE=20 runs twenty times the examples, randomised, for a longer hunt.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.errors import BadRecord
from softcopy.memory import scan
from softcopy.memory.items import MemoryItem, canonical_json
from softcopy.memory.sources.base import Repaired, UnitScan
from softcopy.memory.sources.git import GitSource
from softcopy.memory.sources.jsonl import JsonlSource
from softcopy.memory.sources.mbox import MboxSource
from softcopy.memory.sources.notes import NotesSource

SCALE = float(os.environ.get("SOFTCOPY_FUZZ_SCALE", "1"))  # more examples, for a long hunt
FUZZ = settings(
    max_examples=int(60 * SCALE),
    deadline=None,
    derandomize=SCALE == 1,  # the same inputs every run: a failure reproduces, CI time is stable
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TZ = ZoneInfo("Pacific/Chatham")  # an odd offset (+12:45/+13:45) finds day-boundary slips
_counter = itertools.count()

# --- strategies --------------------------------------------------------------------------

NASTY = ["\ud800", "\udfff", "\ud83d", "😀", "\x00", "\n", "\r\n", "\u2028", "From ", "=?", "\\"]
piece = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))
text = st.lists(piece, max_size=20).map("".join)
raw = st.binary(max_size=60)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
timestamps = st.one_of(
    json_value,
    st.sampled_from(["2024-03-01T10:00:00Z", "2024-02-30", "1709251200", "yesterday", ""]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.datetimes(timezones=st.sampled_from([UTC, TZ, None])).map(lambda d: d.isoformat()),
)


@st.composite
def jsonl_lines(draw: st.DrawFn) -> bytes:
    """A line: a record with fuzzed fields, JSON with cut escapes, or bytes."""
    kind = draw(st.sampled_from(["record", "record", "record", "bytes", "any"]))
    if kind == "bytes":
        return draw(raw).replace(b"\n", b" ")
    if kind == "any":
        return json.dumps(draw(json_value)).encode()
    record: dict[str, Any] = draw(st.dictionaries(text, json_value, max_size=3))
    for name, strategy in (("ts", timestamps), ("text", st.one_of(text, json_value))):
        if draw(st.booleans()) or name == "ts":
            record[name] = draw(strategy)
    for name in ("id", "title"):
        if draw(st.booleans()):
            record[name] = draw(json_value)
    line = json.dumps(record, ensure_ascii=draw(st.booleans()), allow_nan=True)
    encoded = line.encode("utf-8", "surrogatepass")  # lone surrogates as CESU-ish bytes
    if draw(st.booleans()):  # splice in a few bytes anywhere
        at = draw(st.integers(0, len(encoded)))
        encoded = encoded[:at] + draw(raw).replace(b"\n", b"") + encoded[at:]
    return encoded


header_names = st.sampled_from(
    [
        *("Date", "From", "To", "Cc", "Subject", "Message-ID", "Received", "Content-Type"),
        *("Content-Transfer-Encoding", "MIME-Version", "Content-Disposition", "X-Junk"),
    ]
)
encoded_word = st.builds(
    lambda cs, enc, data: f"=?{cs}?{enc}?{data}?=",
    st.sampled_from(["utf-8", "utf-7", "iso-8859-1", "bogus", "utf-16", "utf-8*en", ""]),
    st.sampled_from(["q", "b", "Q", "x"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
)
# Text beside an encoded word is decoded as raw-unicode-escape: a literal \ud800 there
# becomes a lone surrogate in the header's value.
escapes = st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d x", b"\\xe9", b"\\"])
escaped_word = st.builds(
    lambda before, word, after: b" ".join([before, word.encode(), after]),
    escapes,
    encoded_word,
    st.one_of(escapes, st.just(b"")),
)
header_values = st.one_of(
    text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    raw,
    encoded_word.map(str.encode),
    escaped_word,
    st.sampled_from(
        [
            b"Tue, 5 Mar 2024 11:00:00 +0000",
            b"from a by b; Tue, 5 Mar 2024 23:30:00 -0500",
            b"Fri, 31 Dec 9999 23:59:59 +9999",
            b"multipart/mixed; boundary=XX",
            b"multipart/alternative; boundary=XX",
            b"text/html; charset=utf-7",
            b"text/plain; charset=bogus",
            b"base64",
            b"quoted-printable",
            b"\\ud800 =?utf-8?q?x?= \\ud83d",
        ]
    ),
)


@st.composite
def mbox_messages(draw: st.DrawFn) -> bytes:
    from_line = b"From " + draw(
        st.sampled_from(
            [b"ann@example.com Tue Mar  5 11:00:00 2024", b"MAILER-DAEMON", b"x Feb 30", b""]
        )
    )
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    lines = [name.encode() + b": " + value.replace(b"\n", b"\n ") for name, value in headers]
    body = draw(
        st.one_of(
            raw,
            text.map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.just(b"--XX\nContent-Type: text/html\n\n<p>hi<script>x</p>\n--XX--\n"),
        )
    )
    return from_line + b"\n" + b"\n".join(lines) + b"\n\n" + body + b"\n\n"


note_names = st.one_of(
    st.sampled_from(
        [
            *("2024-03-01.md", "2024-02-30.md", "20240230-x.md", "202403011299.md", "plain.md"),
            *("journals/2024_03_01.md", "x.org", "0000-00-00.txt", "note 2024-13-45.md"),
        ]
    ),
    st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12).map(
        lambda s: f"{s}.md"
    ),
)
date_values = st.one_of(
    text,
    st.sampled_from(
        [
            *("2024-03-01", "2024-13-45", "<2024-02-30 Fri>", "[[Mar 1st, 2024]]"),
            *("Feb 30, 2024", "2024-03-01T25:61", "{{date}}", "0024-03-01"),
            *("2024-03-01T10:00:00+14:00", ""),
        ]
    ),
)


@st.composite
def note_files(draw: st.DrawFn) -> bytes:
    style = draw(st.sampled_from(["yaml", "org", "logseq", "none"]))
    date = draw(date_values)
    fields = draw(st.dictionaries(st.sampled_from(["title", "tags", "tag", "x"]), text, max_size=3))
    if style == "yaml":
        head = "---\n" + "".join(f"{k}: {v}\n" for k, v in {"date": date, **fields}.items())
        head += draw(st.sampled_from(["---\n", "", "...\n", "- stray\n---\n"]))
    elif style == "org":
        head = f"#+date: {date}\n" + "".join(f"#+{k}: {v}\n" for k, v in fields.items())
    elif style == "logseq":
        head = f"date:: {date}\n" + "".join(f"{k}:: {v}\n" for k, v in fields.items())
    else:
        head = ""
    body = draw(st.one_of(text, raw.map(lambda b: b.decode("latin-1"))))
    data = (head + body).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + data + draw(raw)
    return data


# --- the property --------------------------------------------------------------------------


def storable(value: str) -> None:
    value.encode("utf-8")  # raises on a lone surrogate


def check_unit(source: Any, unit: str, found: UnitScan) -> None:
    """Everything a scan gave is named and storable, and loads back the same."""
    for problem in found.problems:
        assert isinstance(problem, BadRecord) and problem.reason
        # text is repaired, never a reason to give up on a record
        assert "surrogate" not in problem.reason and "Unicode" not in problem.reason, problem
    for warning in found.repairs:
        assert isinstance(warning, Repaired) and warning.path
    ids = [ref.item_id for ref in found.refs]
    assert len(ids) == len(set(ids))  # ids unique within a unit
    loaded = list(source.load(unit, [ref.locator for ref in found.refs]))
    items = [x for x in loaded if isinstance(x, MemoryItem)]
    assert all(isinstance(x, MemoryItem | BadRecord) for x in loaded)
    assert len(items) == len(loaded)  # the file did not change, so every ref loads
    for item in items:
        storable(item.item_id)
        canonical_json(item.to_record()).encode("utf-8")
    assert sorted((r.item_id, r.day, r.content_hash) for r in found.refs) == sorted(
        (i.item_id, i.day, i.content_hash) for i in items
    )


def fresh_dir(root: Path) -> Path:
    path = root / f"case{next(_counter)}"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(lines=st.lists(jsonl_lines(), min_size=1, max_size=6))
def test_jsonl_lines(root: Path, lines: list[bytes]) -> None:
    path = fresh_dir(root) / "chat.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    source = JsonlSource(name="chat", path=path, tz=TZ, options={})
    check_unit(source, "chat.jsonl", source.scan_unit("chat.jsonl"))


@FUZZ
@given(messages=st.lists(mbox_messages(), min_size=1, max_size=4))
def test_mbox_messages(root: Path, messages: list[bytes]) -> None:
    path = fresh_dir(root) / "mail.mbox"
    path.write_bytes(b"".join(messages))
    source = MboxSource(name="mail", path=path, tz=TZ, options={})
    check_unit(source, "mail.mbox", source.scan_unit("mail.mbox"))


@FUZZ
@given(name=note_names, data=note_files())
def test_note_files_and_front_matter(root: Path, name: str, data: bytes) -> None:
    folder = fresh_dir(root)
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    source = NotesSource(name="notes", path=folder, tz=TZ, options={})
    [(unit, _stamp)] = list(source.units()) or [(name, "")]
    if unit != name:  # an extension the source does not read
        return
    check_unit(source, unit, source.scan_unit(unit))


# --- git: commits written straight into one repository -----------------------------------


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=input, capture_output=True, check=True
    )
    return result.stdout.decode().strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("fuzz-git")
    git(path, "init", "-q", "--bare")
    return path, git(path, "hash-object", "-t", "tree", "-w", "--stdin", input=b"")


author_lines = st.one_of(
    st.sampled_from(
        [
            b"Ann <ann@example.com> 1709294400 +0000",
            b"Ann <ann@example.com> 1709294400 +1345",
            b"Jos\xe9 <j@example.com> 99999999999 -9999",
            b"Nobody <> 0 +0000",
            b"Broken 1709294400",
            b"Ann <ann@example.com> -1 +0000",
        ]
    ),
    raw.map(lambda b: b.replace(b"\n", b"")),
)
messages = st.one_of(
    text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    raw,
    st.sampled_from([b"", b"\n\n\n", b"subject\n\nbody\x00with a NUL", b"\x00\x1e"]),
)
encodings = st.sampled_from([b"", b"encoding ISO-8859-1\n", b"encoding no-such-charset\n"])


@settings(FUZZ, max_examples=int(25 * SCALE))
@given(commits=st.lists(st.tuples(author_lines, encodings, messages), min_size=1, max_size=3))
def test_commit_messages(repo: tuple[Path, str], commits: list[tuple[bytes, bytes, bytes]]) -> None:
    path, tree = repo
    units = []
    for author, encoding, message in commits:
        body = (
            (b"tree " + tree.encode() + b"\nauthor " + author + b"\ncommitter " + author + b"\n")
            + encoding
            + b"\n"
            + message
        )
        units.append(
            git(path, "hash-object", "-t", "commit", "-w", "--literally", "--stdin", input=body)
        )
    source = GitSource(name="code", path=path, tz=TZ, options={})
    for unit, found in source.scan_units(units).items():
        check_unit(source, unit, found)


# --- and through the scan index into the database -----------------------------------------


@settings(FUZZ, max_examples=int(15 * SCALE))
@given(lines=st.lists(jsonl_lines(), min_size=1, max_size=6), names=st.lists(note_names))
def test_whatever_the_sources_hold_the_scan_index_stores(
    home: Path, lines: list[bytes], names: Iterable[str]
) -> None:
    folder = fresh_dir(home)
    (folder / "chat.jsonl").write_bytes(b"\n".join(lines))
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\xff\xfe date: 2024-13-45")
    sources = [
        JsonlSource(name="chat", path=folder / "chat.jsonl", tz=TZ, options={}),
        NotesSource(name="notes", path=folder, tz=TZ, options={}),
    ]
    settings_ = load_settings(home)
    with Session(get_engine(settings_.database_url)) as session:
        for source in sources:
            scan.refresh(session, source)
        session.commit()
