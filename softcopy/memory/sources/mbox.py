"""Mail archives: one mbox file, or a folder of `*.mbox` files, each file a unit.

Messages are found by scanning for "From " separator lines rather than through
`mailbox.mbox`, so a scan is one pass over the bytes and a message's locator is its
byte range: `load` seeks straight to it without indexing the whole file again.

Each message becomes an item as `mail.py` reads it (shared with Maildir); its fallback
time, when the `Date:` header is missing or unreadable, is the date of its `From ` line.

Quoting: the file is read as mboxrd, which is what mutt, Thunderbird's import, Python's
`mailbox` readers and mailing-list archivers agree on: a body line `>From `, `>>From `, ...
loses one `>`. A "From " line splits messages only after a blank line, so an mboxo file
(which quotes only `From `, leaving `>From ` alone) reads the same except that a body line
that really began with `>From ` shows as `From `: the two formats cannot be told apart.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import tzinfo
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import ItemRef, Repaired, Tail, UnitScan, hash_prefix
from softcopy.memory.sources.mail import read_message

KIND = "mbox"

_SEPARATOR = re.compile(rb"\nFrom ")
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


class MboxSource:
    """A mail archive read message by message."""

    kind: ClassVar[str] = KIND

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self.options = dict(options)
        # what scans parsed (records, bytes) and digested: tests and benchmarks read it
        self.read_stats: Counter[str] = Counter()

    def units(self) -> Iterator[tuple[str, str]]:
        """Each mbox file as (relative name, "mtime_ns:size")."""
        for unit, file in self._files():
            stat = file.stat()
            yield unit, f"{stat.st_mtime_ns}:{stat.st_size}"

    def scan_unit(self, unit: str) -> UnitScan:
        """Every message of one file: a ref each, or a bad record naming "message N"."""
        file = self._file(unit)
        scan = UnitScan()
        try:
            with file.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size == 0:
                    scan.tail = Tail(0, hashlib.sha256().hexdigest(), 0)
                    return scan
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    count = self._scan_messages(file, buf, 0, 0, {}, scan)
                    if _ends_blank(buf):
                        scan.tail = Tail(len(buf), hashlib.sha256(buf).hexdigest(), count)
        except (OSError, ValueError) as exc:
            scan.problems.append(BadRecord(file, None, f"cannot read mbox: {exc}"))
        return scan

    def scan_tail(self, unit: str, tail: Tail, known: list[ItemRef]) -> UnitScan | None:
        """The messages appended after `tail` (known: the refs the file had), or None when
        the bytes before it changed or what follows does not start a message."""
        file = self._file(unit)
        with file.open("rb") as handle:
            h = hash_prefix(handle, tail.offset, self.read_stats)
            if h is None or h.hexdigest() != tail.digest:
                return None
            data = handle.read()
        if data and not data.startswith(b"From "):
            return None
        scan = UnitScan()
        seen = {ref.item_id: (ref.content_hash, f"bytes {ref.locator}") for ref in known}
        count = self._scan_messages(file, data, tail.offset, tail.records, seen, scan)
        h.update(data)
        if _ends_blank(data) or not data:
            scan.tail = Tail(tail.offset + len(data), h.hexdigest(), count)
        return scan

    def _scan_messages(
        self,
        file: Path,
        buf: bytes | mmap.mmap,
        base: int,
        count: int,
        seen: dict[str, tuple[str, str]],
        scan: UnitScan,
    ) -> int:
        """Scan the messages of `buf` (which starts at byte `base` of the file, after
        `count` messages); returns the count after them."""
        n = count
        for start, stop, raw in _split(buf):
            n += 1
            self.read_stats["records"] += 1
            self.read_stats["bytes"] += stop - start
            item = _read_message(file, f"message {n}", raw, self.name, self.tz)
            if isinstance(item, BadRecord):
                scan.problems.append(item)
                continue
            locator = f"{base + start}:{base + stop}"
            ref = ItemRef(item.day, item.item_id, item.content_hash, locator)
            _add_ref(scan, seen, ref, file, n)
            if item.repaired:
                scan.repairs.append(Repaired(str(file), f"message {n}", item.day))
        return n

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        """The messages at these byte ranges, each parsed on its own."""
        file = self._file(unit)
        try:
            with file.open("rb") as handle:
                for locator in sorted(set(locators), key=_locator_key):
                    yield self._load_one(file, handle, locator)
        except OSError as exc:
            yield BadRecord(file, None, f"cannot read mbox: {exc}")

    def _load_one(self, file: Path, handle: BinaryIO, locator: str) -> MemoryItem | BadRecord:
        start, stop = _locator_key(locator)
        where = f"bytes {locator}"
        if not 0 <= start < stop:
            return BadRecord(file, where, "not a byte range")
        handle.seek(start)
        raw = handle.read(stop - start + 5)
        # The range must still hold one whole message: a From line here, and the end of
        # the file or the next From line right after it.
        if not raw.startswith(b"From ") or raw[stop - start :] not in (b"", b"From "):
            return BadRecord(file, where, "message moved or gone; scan the file again")
        return _read_message(file, where, raw[: stop - start], self.name, self.tz)

    def _files(self) -> list[tuple[str, Path]]:
        if self.path.is_file():
            return [(self.path.name, self.path)]
        if self.path.is_dir():
            files = sorted(p for p in self.path.rglob("*.mbox") if p.is_file())
            return [(p.relative_to(self.path).as_posix(), p) for p in files]
        raise ConfigError(f"{self.path}: no such mbox file or folder for source {self.name!r}")

    def _file(self, unit: str) -> Path:
        return self.path if self.path.is_file() else self.path / unit


SOURCE = MboxSource


def _add_ref(
    scan: UnitScan, seen: dict[str, tuple[str, str]], ref: ItemRef, file: Path, n: int
) -> None:
    """Keep item ids unique in a file: an exact copy is dropped, a clash is reported."""
    first = seen.get(ref.item_id)
    if first is None:
        seen[ref.item_id] = (ref.content_hash, f"message {n}")
        scan.refs.append(ref)
    elif first[0] != ref.content_hash:
        reason = f"duplicate Message-ID with different content (first at {first[1]})"
        scan.problems.append(BadRecord(file, f"message {n}", reason, ref.day))


# --- splitting the file -----------------------------------------------------------------


def _messages(file: Path) -> Iterator[tuple[int, int, bytes]]:
    """(start, stop, bytes) of each message; a "From " line only splits after a blank line."""
    with file.open("rb") as handle:
        if file.stat().st_size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield from _split(buf)


def _split(buf: bytes | mmap.mmap) -> Iterator[tuple[int, int, bytes]]:
    """(start, stop, bytes) of each message of a buffer; a "From " line only splits after
    a blank line. Raises ValueError when it has text but no message."""
    starts = [0] if buf[:5] == b"From " else []
    starts += [i for m in _SEPARATOR.finditer(buf) if _after_blank(buf, i := m.start() + 1)]
    if not starts and buf[:].strip():
        raise ValueError("no 'From ' separator line; not an mbox file")
    for start, stop in zip(starts, [*starts[1:], len(buf)], strict=True):
        yield start, stop, buf[start:stop]


def _ends_blank(buf: bytes | mmap.mmap) -> bool:
    """Does the buffer end with a blank line, so that "From " appended to it starts a message?"""
    return buf[-1:] == b"\n" and _after_blank(buf, len(buf))


def _after_blank(buf: bytes | mmap.mmap, start: int) -> bool:
    """True at the file start or when the line before `start` is empty."""
    if start == 0:
        return True
    j = start - 2  # buf[start - 1] is the newline that ended the previous line
    if j >= 0 and buf[j] == 0x0D:
        j -= 1
    return j < 0 or buf[j] == 0x0A


def _locator_key(locator: str) -> tuple[int, int]:
    """(start, stop) of a "start:stop" locator; (-1, -1) when it is not one."""
    start, _, stop = locator.partition(":")
    try:
        return int(start), int(stop)
    except ValueError:
        return -1, -1


# --- one message ------------------------------------------------------------------------


def _read_message(
    file: Path, where: str, raw: bytes, source: str, tz: tzinfo
) -> MemoryItem | BadRecord:
    """The item for one message's bytes (From_ line included), or why it cannot be read."""
    from_line, _, message = raw.partition(b"\n")
    sender_and_date = from_line.decode("ascii", errors="replace").rstrip("\r")[5:].strip()
    envelope = (sender_and_date.partition(" ")[2].strip(), "its From line")
    return read_message(
        file, where, _unquote(message), source=source, tz=tz, prefix=KIND, envelope=envelope
    )


def _unquote(data: bytes) -> bytes:
    """Undo mboxrd quoting: ">From " at a line start was "From " in the message."""
    return _QUOTED_FROM.sub(rb"\1", data) if b">From " in data else data
