"""Browser histories built here from the documented schemas: Firefox places.sqlite
(moz_places, moz_historyvisits; Unix microseconds) and Chromium History (urls, visits;
microseconds since 1601), both in WAL mode with recent visits still in the -wal file."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import browser
from softcopy.memory.sources.browser import BrowserSource

TZ = ZoneInfo("Europe/London")
WHEN = datetime(2024, 7, 1, 23, 30, tzinfo=UTC)  # 00:30 on July 2 in London (BST)
UNIX_US = int(WHEN.timestamp() * 1_000_000)
CHROME_US = UNIX_US + 11_644_473_600 * 1_000_000


def firefox(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # keep what follows in the -wal, as a browser does
    db.execute("PRAGMA locking_mode=EXCLUSIVE")  # Firefox's: no other reader while it runs
    db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT, title TEXT)")
    db.execute(
        "CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, from_visit INTEGER,"
        " place_id INTEGER, visit_date INTEGER, visit_type INTEGER)"
    )
    db.execute("INSERT INTO moz_places VALUES (1, 'https://example.org/', 'Example')")
    db.execute("INSERT INTO moz_places VALUES (2, 'https://untitled.example/', NULL)")
    db.execute("INSERT INTO moz_historyvisits VALUES (1, 0, 1, ?, 1)", (UNIX_US,))
    db.execute("INSERT INTO moz_historyvisits VALUES (2, 0, 2, ?, 1)", (UNIX_US + 1,))
    db.execute("INSERT INTO moz_historyvisits VALUES (3, 0, 1, NULL, 1)")
    db.commit()
    return db


def chromium(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(
        "CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT, title TEXT, visit_count INTEGER)"
    )
    db.execute(
        "CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER,"
        " from_visit INTEGER, transition INTEGER)"
    )
    db.execute(
        "INSERT INTO urls VALUES (1, 'https://example.org/', CAST(? AS TEXT), 1)", (b"Caf\xe9",)
    )
    db.execute("INSERT INTO visits VALUES (1, 1, ?, 0, 805306368)", (CHROME_US,))
    db.commit()
    return db


def read(src: BrowserSource) -> Iterator[MemoryItem]:
    for unit, _ in src.units():
        scan = src.scan_unit(unit)
        for got in src.load(unit, [r.locator for r in scan.refs]):
            assert isinstance(got, MemoryItem)
            yield got


def test_firefox_visits_from_a_snapshot_including_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    with closing(firefox(path)):  # still open and locked, as the browser keeps it
        assert (tmp_path / "places.sqlite-wal").stat().st_size > 0
        live = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=0)
        with closing(live), pytest.raises(sqlite3.OperationalError, match="locked"):
            live.execute("SELECT count(*) FROM moz_historyvisits")  # the live file: no
        src = BrowserSource(name="web", path=tmp_path, tz=TZ, options={})
        scan = src.scan_unit("places.sqlite")
        items = sorted(read(src), key=lambda i: i.ts)
        names = {p.name for p in tmp_path.iterdir()}  # no copy left beside the live file
        assert names <= {"places.sqlite", "places.sqlite-wal", "places.sqlite-shm"}
    assert [(i.title, i.meta["url"]) for i in items] == [
        ("Example", "https://example.org/"),
        ("https://untitled.example/", "https://untitled.example/"),
    ]
    assert items[0].ts == WHEN and items[0].day == date(2024, 7, 2)
    assert items[0].text == "Example\nhttps://example.org/"
    (undated,) = scan.problems
    assert str(undated) == f"{path}:moz_historyvisits id 3: no visit time" and undated.day is None


def test_a_checkpoint_between_the_two_copies_is_copied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser moves the -wal's pages into the database right after the database was
    copied: that copy beside the emptied -wal would lack every visit the -wal held, so
    the snapshot is taken again, and holds them all."""
    path = tmp_path / "places.sqlite"
    copies: list[str] = []
    real_copy = shutil.copyfile
    with closing(firefox(path)) as db:

        def copy_then_checkpoint(src: Path, dst: Path) -> object:
            done = real_copy(src, dst)
            copies.append(Path(src).name)
            if len(copies) == 1:  # the browser, between the database's copy and the -wal's
                db.execute("INSERT INTO moz_historyvisits VALUES (4, 0, 1, ?, 1)", (UNIX_US + 9,))
                db.commit()
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return done

        monkeypatch.setattr(browser.shutil, "copyfile", copy_then_checkpoint)
        src = BrowserSource(name="web", path=path, tz=TZ, options={})
        scan = src.scan_unit("places.sqlite")
    assert len(scan.refs) == 3 and len(scan.problems) == 1  # 3 dated visits, 1 undated
    assert copies[:2] == ["places.sqlite", "places.sqlite-wal"] and len(copies) == 4


def test_chromium_epoch_and_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "History"
    with closing(chromium(path)):
        src = BrowserSource(name="web", path=path, tz=TZ, options={})
        scan = src.scan_unit("History")
        (item,) = read(src)
    assert item.ts == WHEN and item.day == date(2024, 7, 2)
    assert item.title == "Caf\ufffd" and item.repaired and item.meta["browser"] == "chromium"
    assert len(scan.repairs) == 1


def test_a_new_visit_changes_the_stamp_and_keeps_old_ids(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    with closing(firefox(path)) as db:
        src = BrowserSource(name="web", path=path, tz=TZ, options={})
        (stamp,) = dict(src.units()).values()
        before = {r.item_id for r in src.scan_unit("places.sqlite").refs}
        db.execute("INSERT INTO moz_historyvisits VALUES (4, 0, 1, ?, 1)", (UNIX_US + 99,))
        db.commit()
        assert dict(src.units())["places.sqlite"] != stamp
        after = {r.item_id for r in src.scan_unit("places.sqlite").refs}
    assert before < after and len(after) == 3


def test_not_a_history_database(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE t (x)")
    (bad,) = (
        BrowserSource(name="w", path=other, tz=TZ, options={}).scan_unit("other.sqlite").problems
    )
    assert "neither a Firefox places.sqlite nor a Chromium History" in str(bad)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not sqlite at all" * 100)
    (bad,) = BrowserSource(name="w", path=junk, tz=TZ, options={}).scan_unit("junk").problems
    assert "cannot read browser history" in str(bad)
    with pytest.raises(ConfigError, match="no browser history"):
        list(BrowserSource(name="w", path=tmp_path / "none", tz=TZ, options={}).units())
