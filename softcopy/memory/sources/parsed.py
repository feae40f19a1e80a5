"""What the export kinds share: a unit (a file, a zip member, a database) read whole.

Slack, Telegram, ChatGPT and browser histories are files written in one piece by an export
or a program, not logs appended line by line: there is no byte offset worth keeping. A
unit of these kinds is parsed whole into (item id → item or bad record); an item's locator
is its id, and `load` parses the unit again only when its stamp changed since the last
parse (the same source object serves every day of a run, so a day costs a dict lookup).

Ids are unique within a source: an exact repeat of an item (the same id and content) is
dropped, and the same id with other content is a bad record naming both places.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import REPLACEMENT, MemoryItem
from softcopy.memory.sources.base import ItemRef, Repaired, UnitScan, day_of

GONE = "no such item any more; the file changed since its scan"


class Entry(NamedTuple):
    """One record of a unit as a kind reads it: where it is, and the item or why not."""

    where: str
    got: MemoryItem | BadRecord


class ParsedUnit:
    """A unit's items by id and its bad records, as one parse found them."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, MemoryItem]] = {}  # id → (where, item)
        self.problems: list[BadRecord] = []

    def add(self, entry: Entry, path: Path | str) -> None:
        got = entry.got
        if isinstance(got, BadRecord):
            self.problems.append(got)
            return
        first = self.items.get(got.item_id)
        if first is None:
            self.items[got.item_id] = (entry.where, got)
        elif first[1].content_hash != got.content_hash:
            reason = f"the id {got.item_id!r} again, with other content (first at {first[0]})"
            self.problems.append(BadRecord(path, entry.where, reason, got.day))


class WholeUnitSource:
    """Base of the kinds whose units are parsed whole; a kind provides `_units` (unit, stamp,
    cheap), `_path` (what to name in messages) and `_entries` (the parse)."""

    kind: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self.options = _options(self.kind, name, options, self.option_defaults)
        self._cache: tuple[str, str, ParsedUnit] | None = None  # (unit, stamp, parse)

    # --- the Source protocol ---------------------------------------------------------

    def units(self) -> Iterator[tuple[str, str]]:
        return self._units()

    def scan_unit(self, unit: str) -> UnitScan:
        parsed = self._parsed(unit)
        scan = UnitScan(problems=list(parsed.problems))
        for item_id, (where, item) in parsed.items.items():
            scan.refs.append(ItemRef(item.day, item_id, item.content_hash, item_id))
            if item.repaired:
                scan.repairs.append(Repaired(str(self._path(unit)), where, item.day))
        return scan

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        wanted = sorted(set(locators))
        if not wanted:
            return
        parsed = self._parsed(unit)
        for locator in wanted:
            found = parsed.items.get(locator)
            yield found[1] if found else BadRecord(self._path(unit), locator, GONE)

    # --- for the kinds ---------------------------------------------------------------

    def _units(self) -> Iterator[tuple[str, str]]:
        raise NotImplementedError

    def _path(self, unit: str) -> str:
        raise NotImplementedError

    def _entries(self, unit: str) -> Iterator[Entry]:
        raise NotImplementedError

    def _parsed(self, unit: str) -> ParsedUnit:
        """The unit's parse, from the cache while its stamp is unchanged (one unit kept)."""
        stamp = self._stamp(unit)
        if self._cache and self._cache[:2] == (unit, stamp):
            return self._cache[2]
        parsed = ParsedUnit()
        for entry in self._entries(unit):
            parsed.add(entry, self._path(unit))
        self._cache = (unit, stamp, parsed) if stamp else None
        return parsed

    def _stamp(self, unit: str) -> str:
        """The unit's stamp now, or "" when it is gone (then nothing is cached)."""
        return next((stamp for key, stamp in self._units() if key == unit), "")

    def _item(
        self,
        item_id: str,
        ts: datetime,
        title: str,
        text: str,
        meta: dict[str, Any],
        *,
        bad_bytes: bool = False,
    ) -> MemoryItem:
        """An item of this source, its day `ts` in the configured timezone. `bad_bytes`: the
        file held bytes that are not UTF-8, so U+FFFD in this item's text marks a repair."""
        repaired = bad_bytes and REPLACEMENT in f"{item_id}{title}{text}{meta}"
        return MemoryItem(
            item_id=item_id,
            source=self.name,
            ts=ts,
            day=day_of(ts, self.tz),
            title=title,
            text=text,
            meta=meta,
            repaired=repaired,
        )


def file_stamp(path: Path) -> str:
    """`mtime_ns:size`, what every file-based kind uses: a rewrite changes one or both."""
    st = path.stat()
    return f"{st.st_mtime_ns}:{st.st_size}"


def from_epoch(value: Any, scale: float = 1.0) -> datetime | None:
    """An epoch number (or numeric string) times `scale` seconds as UTC, or None if it is none."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value) * scale, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def load_json(data: bytes) -> tuple[Any, bool]:
    """JSON from bytes, and whether bytes that were not UTF-8 had to become U+FFFD.

    Raises ValueError (json.JSONDecodeError) with the line and column of what is malformed.
    """
    import json

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text, repaired = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, repaired = data.decode("utf-8", errors="replace"), True
    return json.loads(text), repaired


def read_export(
    path: Path, read: Callable[[], bytes], shape: type, what: str
) -> tuple[Any, bool] | BadRecord:
    """A whole JSON export read by `read`, and whether bytes had to become U+FFFD; or the
    bad record saying why it cannot be used: unreadable, malformed, or not `shape` (then
    `what` says what was expected)."""
    try:
        data, repaired = load_json(read())
    except (OSError, KeyError) as exc:  # KeyError: a member missing from a zip
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return BadRecord(path, None, f"cannot read: {reason}")
    except ValueError as exc:
        return BadRecord(path, None, f"malformed JSON: {exc}")
    if not isinstance(data, shape):
        return BadRecord(path, None, what)
    return data, repaired


def title_of(text: str, chars: int = 80) -> str:
    """The first non-blank line of a text, cut to `chars`."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:chars].rstrip()
    return ""


def _options(
    kind: str, name: str, options: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """The kind's options, checked against its defaults: no unknown key, the same type."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(f"source {name!r}: unknown {kind} option(s) {', '.join(unknown)}")
    for key, value in options.items():
        if type(value) is not type(defaults[key]):
            expected = type(defaults[key]).__name__
            raise ConfigError(f"source {name!r}: option {key} must be a {expected}, not {value!r}")
    return {**defaults, **options}
