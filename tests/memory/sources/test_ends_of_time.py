"""A record dated at the ends of time, with an offset that takes it past what a datetime
holds in UTC (0001-01-01T00:00+01:00, 9999-12-31T23:00-05:00), is a bad record naming its
date, never an OverflowError out of the scan (issue 8: never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

from softcopy.memory.sources.base import UnitScan
from softcopy.memory.sources.jsonl import JsonlSource
from softcopy.memory.sources.mbox import MboxSource
from softcopy.memory.sources.telegram import TelegramSource

NEW_YORK = ZoneInfo("America/New_York")  # west of UTC: 9999-12-31T23:59 there is year 10000


def scanned(source: JsonlSource | MboxSource | TelegramSource) -> list[UnitScan]:
    return [source.scan_unit(unit) for unit, _ in source.units()]


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    stamps = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "2024-03-01T12:00:00Z"]
    lines = [json.dumps({"id": str(i), "ts": ts, "text": "x"}) for i, ts in enumerate(stamps)]
    path.write_text("\n".join(lines) + "\n")
    [scan] = scanned(JsonlSource(name="chat", path=path, tz=NEW_YORK, options={}))
    assert len(scan.refs) == 1
    assert [p.reason for p in scan.problems] == [
        f"timestamp {stamps[0]!r} is out of range",
        f"timestamp {stamps[1]!r} is out of range",
    ]


def test_mbox(tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    path.write_bytes(
        b"From a@example.com Fri Mar  1 12:00:00 2024\nFrom: a@example.com\nSubject: far\n"
        b"Message-ID: <far@x>\nDate: Fri, 31 Dec 9999 23:00:00 -0500\n\nbody\n\n"
        b"From a@example.com Fri Mar  1 12:00:00 2024\nFrom: a@example.com\nSubject: near\n"
        b"Message-ID: <near@x>\nDate: Fri, 1 Mar 2024 12:00:00 +0000\n\nbody\n\n"
    )
    [scan] = scanned(MboxSource(name="mail", path=path, tz=NEW_YORK, options={}))
    # the far date is unreadable: the envelope's date stands in, as for a missing Date:
    assert len(scan.refs) == 2 and scan.problems == []


def test_telegram(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    message = {"type": "message", "from": "A", "text": "a"}
    dates = ["9999-12-31T23:59:00", "2024-03-01T12:00:00"]
    chat = {
        "name": "B",
        "type": "personal_chat",
        "id": 1,
        "messages": [{**message, "id": i, "date": d} for i, d in enumerate(dates)],
    }
    path.write_text(json.dumps({"chats": {"list": [chat]}}))
    [scan] = scanned(TelegramSource(name="tg", path=path, tz=NEW_YORK, options={}))
    assert len(scan.refs) == 1
    assert [p.reason for p in scan.problems] == [f"unreadable date {dates[0]!r}"]
