"""What every source kind provides, and the records a scan produces.

A source is read in *units* (a note file, a JSONL file, an mbox, a commit). Each unit
has a cheap *stamp* (mtime and size, a commit hash); the scan index re-reads only units
whose stamp changed, which is what makes coverage incremental. Reading a unit yields
`ItemRef`s carrying a kind-specific *locator* so that a day's items can be loaded back
without reading the whole source again.

Optional methods a kind may add, each found with getattr: `scan_units` (many units in one
read), `load_many` (a step's days in one read: git starts one process for all of them),
`listing_stamp` (a digest that is unchanged only if no unit changed, cheaper than
listing them) and `scan_tail` (read an append-only unit on from where its last scan
stopped, see `Tail`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol

from softcopy.errors import BadRecord
from softcopy.memory.items import MemoryItem

REPAIRED_REASON = "text repaired: lone surrogates, NULs or undecodable bytes are now U+FFFD"


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Where one item lives and what it hashes to, as recorded by a scan."""

    day: date
    item_id: str
    content_hash: str
    locator: str  # opaque to everyone but the source kind that wrote it


@dataclass(frozen=True, slots=True)
class Repaired:
    """An item whose text was repaired to U+FFFD (see memory/items.py): it is indexed, and
    this warning names the file and line so someone can fix the original."""

    path: str
    where: str | None
    day: date | None
    reason: str = REPAIRED_REASON

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.where}: {self.reason}"
            if self.where
            else f"{self.path}: {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class Tail:
    """Where a scan of an append-only file stopped: the next scan, if the file only grew,
    reads from `offset` on. `digest` is the sha256 of the bytes before it; `records` how
    many lines or messages they held (numbering goes on from there)."""

    offset: int
    digest: str
    records: int


@dataclass(slots=True)
class UnitScan:
    refs: list[ItemRef] = field(default_factory=list)
    problems: list[BadRecord] = field(default_factory=list)
    repairs: list[Repaired] = field(default_factory=list)
    # set by kinds that can read the unit on from where this scan stopped (scan_tail);
    # None when the next scan must read it whole (say, its last line was cut short)
    tail: Tail | None = field(default=None, compare=False)

    def add_item(self, item: MemoryItem, locator: str, path: Path, where: str | None) -> None:
        """A ref to a read item, and a repair warning when its text had to be repaired."""
        self.refs.append(ItemRef(item.day, item.item_id, item.content_hash, locator))
        if item.repaired:
            self.repairs.append(Repaired(str(path), where, item.day))


class Source(Protocol):
    """A configured source of one kind. Construct with `open_source`."""

    kind: ClassVar[str]
    name: str
    path: Path
    tz: tzinfo

    def units(self) -> Iterator[tuple[str, str]]:
        """Every unit now present, as (unit key, stamp). Must be cheap: no content reads."""
        ...

    def scan_unit(self, unit: str) -> UnitScan:
        """Read one unit: the refs of its items and the bad records it holds."""
        ...

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        """Read back the items at these locators of one unit, in any order."""
        ...


def hash_prefix(handle: BinaryIO, offset: int, stats: Counter[str] | None = None) -> Any:
    """A sha256 of a file's first `offset` bytes, left at `offset` to go on hashing (and
    reading) from there; None when the file is shorter now."""
    h = hashlib.sha256()
    handle.seek(0)
    left = offset
    while left:
        block = handle.read(min(left, 1 << 20))
        if not block:
            return None
        h.update(block)
        left -= len(block)
    if stats is not None:
        stats["digested"] += offset
    return h


def load_many(
    source: Source, wanted: list[tuple[str, list[str]]]
) -> Iterator[tuple[int, MemoryItem | BadRecord]]:
    """What `load` gives for each (unit, locators) asked for, as (index asked, outcome).

    A kind whose reads have a fixed cost per call (git starts a process) provides
    `load_many` itself and reads them all at once; any other kind is read one request at a
    time. Either way the outcomes are those `load` gives for each request on its own.
    """
    batch = getattr(source, "load_many", None)
    if batch is not None:
        yield from batch(wanted)
        return
    for n, (unit, locators) in enumerate(wanted):
        for outcome in source.load(unit, locators):
            yield n, outcome


def day_of(ts: datetime, tz: tzinfo) -> date:
    """The calendar day of an aware timestamp in the configured timezone. A timestamp
    within hours of the end of time (9999-12-31T12:00Z seen from UTC+13) has no day there
    that a date can hold: it is dated the last (or first) day there is, a future-dated
    item as any other, never an error that stops the scan."""
    try:
        return ts.astimezone(tz).date()
    except OverflowError:
        return date.max if ts.year == date.max.year else date.min
