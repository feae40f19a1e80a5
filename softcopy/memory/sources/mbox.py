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

import mmap
import re
from collections.abc import Iterable, Iterator
from datetime import tzinfo
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import ItemRef, Repaired, UnitScan
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

    def units(self) -> Iterator[tuple[str, str]]:
        """Each mbox file as (relative name, "mtime_ns:size")."""
        for unit, file in self._files():
            stat = file.stat()
            yield unit, f"{stat.st_mtime_ns}:{stat.st_size}"

    def scan_unit(self, unit: str) -> UnitScan:
        """Every message of one file: a ref each, or a bad record naming "message N"."""
        file = self._file(unit)
        scan = UnitScan()
        seen: dict[str, tuple[str, int]] = {}
        try:
            for n, (start, stop, raw) in enumerate(_messages(file), start=1):
                item = _read_message(file, f"message {n}", raw, self.name, self.tz)
                if isinstance(item, BadRecord):
                    scan.problems.append(item)
                    continue
                ref = ItemRef(item.day, item.item_id, item.content_hash, f"{start}:{stop}")
                _add_ref(scan, seen, ref, file, n)
                if item.repaired:
                    scan.repairs.append(Repaired(str(file), f"message {n}", item.day))
        except (OSError, ValueError) as exc:
            scan.problems.append(BadRecord(file, None, f"cannot read mbox: {exc}"))
        return scan

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
    scan: UnitScan, seen: dict[str, tuple[str, int]], ref: ItemRef, file: Path, n: int
) -> None:
    """Keep item ids unique in a file: an exact copy is dropped, a clash is reported."""
    first = seen.get(ref.item_id)
    if first is None:
        seen[ref.item_id] = (ref.content_hash, n)
        scan.refs.append(ref)
    elif first[0] != ref.content_hash:
        reason = f"duplicate Message-ID with different content (first at message {first[1]})"
        scan.problems.append(BadRecord(file, f"message {n}", reason, ref.day))


# --- splitting the file -----------------------------------------------------------------


def _messages(file: Path) -> Iterator[tuple[int, int, bytes]]:
    """(start, stop, bytes) of each message; a "From " line only splits after a blank line."""
    with file.open("rb") as handle:
        if file.stat().st_size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            starts = [0] if buf[:5] == b"From " else []
            starts += [i for m in _SEPARATOR.finditer(buf) if _after_blank(buf, i := m.start() + 1)]
            if not starts and buf[:].strip():
                raise ValueError("no 'From ' separator line; not an mbox file")
            for start, stop in zip(starts, [*starts[1:], len(buf)], strict=True):
                yield start, stop, buf[start:stop]


def _after_blank(buf: mmap.mmap, start: int) -> bool:
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
