"""Browser history: Firefox `places.sqlite` or a Chromium-family `History` file (Chrome,
Chromium, Edge, Brave), told apart by their tables.

A running browser holds its history database open (Firefox locks it exclusively), and
the newest visits sit in the `-wal` file beside it. So the file and its `-wal` are first
copied to a temporary folder (again while either changed during the copy: a checkpoint
between the two would tear it), and the copy is opened read-only with the stdlib
`sqlite3`; the live file is never opened. The copy is removed once read.

- Unit: the database file; its stamp is mtime and size of the file and of its `-wal`.
- Item: one visit (a page opened at a time); id `browser:` plus a hash of the URL and the
  visit's time, so it survives the browser renumbering rows (vacuum, sync, a new profile
  holding the same history). Title is the page title (else the URL), text title and URL.
- Day: the visit time in the configured timezone. Firefox writes
  `moz_historyvisits.visit_date` in microseconds since 1970-01-01 UTC; Chromium writes
  `visits.visit_time` in microseconds since 1601-01-01 UTC (the Windows FILETIME epoch).
- Bad input: a visit without a time (0 or NULL) is a bad record naming the file and the
  visit's row (`moz_historyvisits id 12`), failing no day; a file with neither schema,
  or that is no SQLite database, is one bad record naming the file.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.sources.parsed import Entry, WholeUnitSource, file_stamp

KIND = "browser"
FILE_NAMES = ("places.sqlite", "History")  # what a profile folder holds
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOWS_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
SNAPSHOT_TRIES = 5

# (browser, table of visits, query: visit row id, time, url, title, visit kind)
_SCHEMAS = (
    (
        "firefox",
        "moz_historyvisits",
        {"moz_places", "moz_historyvisits"},
        "SELECT v.id, v.visit_date, p.url, p.title, v.visit_type"
        " FROM moz_historyvisits v JOIN moz_places p ON p.id = v.place_id ORDER BY v.id",
        UNIX_EPOCH,
    ),
    (
        "chromium",
        "visits",
        {"urls", "visits"},
        "SELECT v.id, v.visit_time, u.url, u.title, v.transition"
        " FROM visits v JOIN urls u ON u.id = v.url ORDER BY v.id",
        WINDOWS_EPOCH,
    ),
)


class BrowserSource(WholeUnitSource):
    kind = KIND

    def _file(self) -> Path:
        if self.path.is_dir():
            for name in FILE_NAMES:
                if (self.path / name).is_file():
                    return self.path / name
        return self.path

    def _units(self) -> Iterator[tuple[str, str]]:
        file = self._file()
        if not file.is_file():
            raise ConfigError(f"{file}: no browser history database for source {self.name!r}")
        yield file.name, self._stamp(file.name)

    def _stamp(self, unit: str) -> str:
        file = self._file()
        if not file.is_file():
            return ""
        wal = file.with_name(file.name + "-wal")
        return f"{file_stamp(file)}|{file_stamp(wal) if wal.is_file() else '-'}"

    def _path(self, unit: str) -> str:
        return str(self._file())

    def _entries(self, unit: str) -> Iterator[Entry]:
        path = self._path(unit)
        try:
            rows = _snapshot_rows(self._file())
        except (OSError, sqlite3.Error, _NoSchema) as exc:
            yield Entry("", BadRecord(path, None, f"cannot read browser history: {exc}"))
            return
        browser, table, raw_rows, epoch = rows
        for visit_id, when, url, title, visit_kind in raw_rows:
            where = f"{table} id {visit_id}"
            if not isinstance(when, int) or when <= 0:
                yield Entry(where, BadRecord(path, where, "no visit time"))
                continue
            try:
                ts = epoch + timedelta(microseconds=when)
            except OverflowError:
                yield Entry(where, BadRecord(path, where, f"visit time {when} is out of range"))
                continue
            url = url or ""
            key = f"{when}\n{url}".encode("utf-8", "surrogatepass")
            meta: dict[str, Any] = {"url": url, "browser": browser}
            if isinstance(visit_kind, int):
                meta["visit_type"] = visit_kind
            item = self._item(
                f"browser:{hashlib.sha256(key).hexdigest()[:24]}",
                ts,
                (title or "").strip() or url,
                f"{title}\n{url}" if title else url,
                meta,
                bad_bytes=True,  # titles are decoded with U+FFFD for bytes not UTF-8
            )
            yield Entry(where, item)


class _NoSchema(Exception):
    pass


def _snapshot_rows(file: Path) -> tuple[str, str, list[tuple[Any, ...]], datetime]:
    """(browser, visits table, visit rows, epoch) read from a copy of the file and its -wal."""
    with tempfile.TemporaryDirectory(prefix="softcopy-history-") as scratch:
        copy = Path(scratch) / "history.sqlite"
        _copy_snapshot(file, copy)
        connection = sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)
        try:
            # Titles are whatever pages said: bytes that are not UTF-8 become U+FFFD.
            connection.text_factory = lambda data: data.decode("utf-8", errors="replace")
            listed = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {name for (name,) in listed}
            for browser, table, needed, query, epoch in _SCHEMAS:
                if needed <= tables:
                    return browser, table, connection.execute(query).fetchall(), epoch
        finally:
            connection.close()
    raise _NoSchema("neither a Firefox places.sqlite nor a Chromium History database")


def _copy_snapshot(file: Path, copy: Path) -> None:
    """Copy the database and its -wal as one moment of them: the browser may write, or move
    the -wal's pages into the database, between the two copies, and a database copied
    before a checkpoint with a -wal copied after it lacks what the checkpoint moved. So
    the copy is made again (up to SNAPSHOT_TRIES times) until both files' stamps are the
    same after it as before."""
    wal = file.with_name(file.name + "-wal")
    for _ in range(SNAPSHOT_TRIES):
        before = _stamps(file, wal)
        shutil.copyfile(file, copy)
        copy.with_name(copy.name + "-wal").unlink(missing_ok=True)
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        if _stamps(file, wal) == before:
            return
    # still being written: read the last copy; a torn one is one bad record, not a crash


def _stamps(*files: Path) -> tuple[str, ...]:
    return tuple(file_stamp(f) if f.is_file() else "-" for f in files)


SOURCE = BrowserSource
