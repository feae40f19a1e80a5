"""Maildir folders as offlineimap and mbsync write them: cur/, new/, tmp/, flags after
`:2,`, mbsync's `,U=` and Maildir++ `.Folder` subfolders."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.maildir import MaildirSource

TZ = ZoneInfo("UTC")

PLAIN = b"""From: =?koi8-r?b?98HTyczJyg==?= <v@example.ru>
To: me@example.com
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
Date: Fri, 01 Mar 2024 10:00:00 +0000
Message-ID: <one@example.com>

Hello from a Maildir.
"""
UNDATED = b"""From: a@example.com
Subject: no date here
Received: from mx by mail; Sat, 02 Mar 2024 08:00:00 +0000

Relayed.
"""
NOTHING = b"From: a@example.com\nSubject: timeless\n\nNo time anywhere.\n"


def maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def tree(tmp_path: Path) -> Path:
    root = maildir(tmp_path / "mail")
    (root / "cur" / "1709287200.M1P1.host,U=7:2,S").write_bytes(PLAIN)
    (root / "new" / "1709366400.M2P2.host").write_bytes(UNDATED)
    (root / "tmp" / "1709366401.M3P3.host").write_bytes(b"half written")
    sent = maildir(root / ".Sent")
    (sent / "cur" / "1709370000.M4P4.host:2,S").write_bytes(PLAIN.replace(b"one@", b"two@"))
    return root


def source(path: Path) -> MaildirSource:
    return MaildirSource(name="mail", path=path, tz=TZ, options={})


def read(src: MaildirSource) -> dict[str, MemoryItem | BadRecord]:
    out: dict[str, MemoryItem | BadRecord] = {}
    for unit, _ in src.units():
        scan = src.scan_unit(unit)
        for problem in scan.problems:
            out[unit] = problem
        for got in src.load(unit, [r.locator for r in scan.refs]):
            out[unit] = got
    return out


def test_messages_in_cur_new_and_subfolders_not_tmp(tmp_path: Path) -> None:
    got = read(source(tree(tmp_path)))
    assert sorted(got) == [
        ".Sent/1709370000.M4P4.host",
        "1709287200.M1P1.host",
        "1709366400.M2P2.host",
    ]
    first = got["1709287200.M1P1.host"]
    assert isinstance(first, MemoryItem)
    assert first.item_id == "maildir:1709287200.M1P1.host"
    assert first.title == "Grüße"  # RFC 2047 in UTF-8
    assert first.meta["from"] == "Василий <v@example.ru>"  # RFC 2047 in KOI8-R
    assert first.meta["message_id"] == "one@example.com"
    relayed = got["1709366400.M2P2.host"]
    assert isinstance(relayed, MemoryItem) and relayed.day == date(2024, 3, 2)
    assert got[".Sent/1709370000.M4P4.host"].meta["folder"] == ".Sent"  # type: ignore[union-attr]


def test_reading_a_message_moves_it_but_keeps_its_unit_and_id(tmp_path: Path) -> None:
    root = tree(tmp_path)
    src = source(root)
    before = dict(src.units())
    (root / "new" / "1709366400.M2P2.host").rename(root / "cur" / "1709366400.M2P2.host:2,RS")
    after = dict(src.units())
    assert set(after) == set(before)
    assert after["1709366400.M2P2.host"] != before["1709366400.M2P2.host"]
    assert after["1709287200.M1P1.host"] == before["1709287200.M1P1.host"]
    (ref,) = src.scan_unit("1709366400.M2P2.host").refs
    assert ref.item_id == "maildir:1709366400.M2P2.host"


def test_date_falls_back_to_the_delivery_time_in_the_name(tmp_path: Path) -> None:
    root = maildir(tmp_path / "mail")
    (root / "new" / "1709290800.M9P9.host").write_bytes(NOTHING)
    (root / "new" / "nodelivery.host").write_bytes(NOTHING)
    got = read(source(root))
    dated = got["1709290800.M9P9.host"]
    assert isinstance(dated, MemoryItem)
    assert dated.ts == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    bad = got["nodelivery.host"]
    assert isinstance(bad, BadRecord) and bad.day is None
    assert "no Date header, and no date in Received headers" in str(bad)


def test_the_day_is_the_configured_timezones(tmp_path: Path) -> None:
    """A Date header's instant and a delivery time (Unix seconds, UTC) both fall on their
    calendar day in the configured timezone: 23:30 UTC is the next day in Berlin."""
    root = maildir(tmp_path / "mail")
    late = PLAIN.replace(b"Fri, 01 Mar 2024 10:00:00 +0000", b"Fri, 01 Mar 2024 18:30:00 -0500")
    (root / "cur" / "1709287200.M1P1.host:2,S").write_bytes(late)
    (root / "new" / "1709335800.M2P2.host").write_bytes(NOTHING)
    got = read(MaildirSource(name="mail", path=root, tz=ZoneInfo("Europe/Berlin"), options={}))
    header, delivered = got["1709287200.M1P1.host"], got["1709335800.M2P2.host"]
    assert isinstance(header, MemoryItem) and isinstance(delivered, MemoryItem)
    assert header.ts == delivered.ts == datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    assert header.day == delivered.day == date(2024, 3, 2)


def test_a_vanished_message_and_a_missing_folder(tmp_path: Path) -> None:
    root = tree(tmp_path)
    src = source(root)
    list(src.units())
    (root / ".Sent" / "cur" / "1709370000.M4P4.host:2,S").unlink()
    (gone,) = src.load(".Sent/1709370000.M4P4.host", ["x"])
    assert isinstance(gone, BadRecord) and "gone" in str(gone)
    with pytest.raises(ConfigError, match="no such Maildir"):
        list(source(tmp_path / "none").units())
    with pytest.raises(ConfigError, match="unknown maildir option"):
        MaildirSource(name="m", path=root, tz=TZ, options={"x": 1})
