"""Append-only files (JSONL, mbox) that only grew are read from where the last scan
stopped: the records parsed are the appended ones, and the index equals a full scan's.
A prefix that changed, a file that shrank or a last line cut short means a full rescan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from softcopy.config import Settings, add_source, load_settings
from softcopy.db import get_engine
from softcopy.memory import scan
from softcopy.memory.sources import open_source
from softcopy.memory.tables import (
    SourceDay,
    SourceItem,
    SourceProblem,
    SourceScan,
    SourceUnit,
)

START = datetime(2026, 1, 1, 8, tzinfo=UTC)


def mail(n: int, *, ident: int | None = None, text: str = "") -> str:
    ts = START + timedelta(hours=5 * n)
    return (
        f"From a@example.org {ts:%a %b %d %H:%M:%S %Y}\nFrom: a@example.org\n"
        f"Subject: message {n}\nDate: {format_datetime(ts)}\n"
        f"Message-ID: <{n if ident is None else ident}@test>\n\nbody {n} {text}\n\n"
    )


def line(n: int, *, ident: str | None = None) -> str:
    ts = (START + timedelta(hours=5 * n)).isoformat()
    return json.dumps({"id": ident or f"m{n}", "ts": ts, "text": f"text {n}"}) + "\n"


@pytest.fixture
def mailbox(home: Path) -> Settings:
    (home / "mail.mbox").write_text("".join(mail(n) for n in range(200)))
    (home / "chat.jsonl").write_text("".join(line(n) for n in range(200)))
    add_source(home, name="mail", kind="mbox", path="mail.mbox")
    add_source(home, name="chat", kind="jsonl", path="chat.jsonl")
    return load_settings(home)


def refresh(settings: Settings, name: str) -> tuple[dict[str, int], scan.ScanSummary]:
    """Refresh the source's index with a fresh source object; what it parsed, and the summary."""
    source = open_source(settings.source(name), settings.timezone)
    with Session(get_engine(settings.database_url)) as session:
        summary = scan.refresh(session, source)
        session.commit()
    return dict(source.read_stats), summary  # type: ignore[attr-defined]


def indexed(settings: Settings, name: str) -> tuple[set[tuple[object, ...]], ...]:
    with Session(get_engine(settings.database_url)) as session:
        items = session.execute(
            select(
                SourceItem.day, SourceItem.item_id, SourceItem.content_hash, SourceItem.locator
            ).where(SourceItem.source == name)
        ).all()
        days = session.execute(
            select(SourceDay.day, SourceDay.items, SourceDay.digest).where(SourceDay.source == name)
        ).all()
        problems = session.execute(
            select(SourceProblem.location, SourceProblem.reason).where(SourceProblem.source == name)
        ).all()
    return {tuple(r) for r in items}, {tuple(r) for r in days}, {tuple(r) for r in problems}


def rescanned_whole(settings: Settings, name: str) -> tuple[set[tuple[object, ...]], ...]:
    """What the index holds after forgetting the source and scanning it from scratch."""
    with Session(get_engine(settings.database_url)) as session:
        for table in (SourceUnit, SourceScan):
            session.execute(table.__table__.delete().where(table.source == name))
        session.commit()
    refresh(settings, name)
    return indexed(settings, name)


def append(path: Path, text: str) -> int:
    with path.open("a") as out:
        out.write(text)
    return len(text.encode())


@pytest.mark.parametrize(("name", "record"), [("mail", mail), ("chat", line)])
def test_a_file_that_grew_is_read_from_its_previous_end(
    mailbox: Settings, name: str, record: object
) -> None:
    first, _ = refresh(mailbox, name)
    assert first["records"] == 200
    path = mailbox.home / ("mail.mbox" if name == "mail" else "chat.jsonl")
    appended = append(path, "".join(record(n) for n in range(200, 210)))  # type: ignore[operator]
    stats, summary = refresh(mailbox, name)
    assert stats["records"] == 10  # the appended records, not the 210 of the file
    assert stats["bytes"] == appended
    assert summary.units_read == 1 and len(summary.days_changed) >= 2
    after = indexed(mailbox, name)
    assert len(after[0]) == 210
    assert after == rescanned_whole(mailbox, name)


@pytest.mark.parametrize("name", ["mail", "chat"])
def test_a_changed_prefix_means_a_full_rescan(mailbox: Settings, name: str) -> None:
    refresh(mailbox, name)
    path = mailbox.home / ("mail.mbox" if name == "mail" else "chat.jsonl")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"text 7", b"TEXT 7").replace(b"body 7", b"BODY 7"))
    append(path, mail(300) if name == "mail" else line(300))
    stats, _ = refresh(mailbox, name)
    assert stats["records"] == 201
    after = indexed(mailbox, name)
    assert len(after[0]) == 201
    assert after == rescanned_whole(mailbox, name)


def test_a_file_that_shrank_is_read_again_whole(mailbox: Settings) -> None:
    refresh(mailbox, "chat")
    path = mailbox.home / "chat.jsonl"
    path.write_text("".join(line(n) for n in range(150)))
    stats, _ = refresh(mailbox, "chat")
    assert stats["records"] == 150
    assert len(indexed(mailbox, "chat")[0]) == 150


def test_a_last_line_cut_short_is_read_again_once_it_is_whole(mailbox: Settings) -> None:
    path = mailbox.home / "chat.jsonl"
    whole = line(200)
    append(path, whole[:20])  # a writer caught mid-line: a bad record for now
    refresh(mailbox, "chat")
    assert len(indexed(mailbox, "chat")[2]) == 1
    append(path, whole[20:] + line(201))
    stats, _ = refresh(mailbox, "chat")
    assert stats["records"] == 202  # the scan that saw the cut line kept no place to resume
    items, _, problems = indexed(mailbox, "chat")
    assert len(items) == 202 and problems == set()


def test_appended_repeats_and_clashes_are_told_as_a_full_scan_tells_them(
    mailbox: Settings,
) -> None:
    refresh(mailbox, "chat")
    refresh(mailbox, "mail")
    append(mailbox.home / "chat.jsonl", line(250, ident="m3") + line(251, ident="m3"))
    append(mailbox.home / "mail.mbox", mail(250, ident=5, text="other") + mail(5))
    for name in ("chat", "mail"):
        stats, _ = refresh(mailbox, name)
        assert stats["records"] == 2
        after = indexed(mailbox, name)
        whole = rescanned_whole(mailbox, name)
        assert after[:2] == whole[:2]  # items and days; a clash names its first place
        assert {where for where, _ in after[2]} == {where for where, _ in whole[2]}
    chat_ids = {item[1] for item in indexed(mailbox, "chat")[0]}
    assert {"jsonl:chat.jsonl:m3~2", "jsonl:chat.jsonl:m3~3"} <= chat_ids
    items, _, problems = indexed(mailbox, "mail")
    assert len(items) == 200  # the exact copy of message 5 is dropped
    [(where, reason)] = problems
    assert where.endswith("message 201") and "duplicate Message-ID" in reason
