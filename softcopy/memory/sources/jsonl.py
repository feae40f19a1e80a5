"""JSONL: one JSON object per line, each a memory item with a timestamp and a text.

The source is one file, or a folder whose `*.jsonl` / `*.ndjson` files (not subfolders) are
the units; either way a unit is keyed by its file name. A record's locator is the byte offset
of its line, so a day's items load back with one seek each. Field names are options and may
be dotted paths into nested objects ("message.body").

Text that cannot be stored as it is, a lone surrogate escape (`"\\ud800"`) or bytes that are
not UTF-8 inside a string, is repaired to U+FFFD (memory/items.py): the record indexes and a
warning names the file and line. A line that is not a JSON object with a readable timestamp
is a bad record; when not even its day can be told it is a problem of the source, never of
some day's export.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, ClassVar, NamedTuple

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem, canonical, canonical_json, repair_text
from softcopy.memory.sources.base import ItemRef, Repaired, Tail, UnitScan, day_of, hash_prefix

KIND = "jsonl"
SUFFIXES = (".jsonl", ".ndjson")
FIELD_DEFAULTS = {"ts_field": "ts", "text_field": "text", "title_field": "title", "id_field": "id"}
TITLE_CHARS = 80  # a title made from the text is its first line, cut to this length
BOM = b"\xef\xbb\xbf"

# Epoch numbers above these magnitudes are taken as ns, µs, ms; anything smaller is seconds.
_EPOCH_SCALES = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NUMBER = re.compile(r"\s*[+-]?\d+(?:\.\d*)?\s*")


class _Invalid(ValueError):
    """Why a line is not an item; never leaves this module (it becomes a BadRecord)."""

    def __init__(self, reason: str, day: date | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.day = day


@dataclass(frozen=True, slots=True)
class _Fields:
    ts: str
    text: str
    title: str  # "" means: no title field, derive one from the text
    id: str  # "" means: no id field, derive one from (ts, text)


class _Record(NamedTuple):  # a tuple: built once per line, so it must be cheap
    item_id: str
    ts: datetime
    day: date
    title: str
    text: str
    meta: dict[str, Any]
    repaired: bool  # bytes that were not UTF-8, or an id with a lone surrogate, became U+FFFD


class JsonlSource:
    """A JSONL file, or a folder of them; one item per non-blank line."""

    kind: ClassVar[str] = KIND

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self.fields = _fields(name, options)
        # what scans parsed (records, bytes) and digested: tests and benchmarks read it
        self.read_stats: Counter[str] = Counter()

    def units(self) -> Iterator[tuple[str, str]]:
        for file in self._files():
            st = file.stat()
            yield file.name, f"{st.st_mtime_ns}:{st.st_size}"

    def scan_unit(self, unit: str) -> UnitScan:
        path = self._file(unit)
        scan = UnitScan()
        try:
            with path.open("rb") as handle:
                h = hashlib.sha256()
                lines, end, whole = self._scan_lines(unit, path, handle, (0, 0), {}, scan, h)
                if whole:
                    scan.tail = Tail(end, h.hexdigest(), lines)
        except OSError as exc:
            scan.problems.append(BadRecord(path, None, f"cannot read: {exc.strerror}"))
        return scan

    def scan_tail(self, unit: str, tail: Tail, known: list[ItemRef]) -> UnitScan | None:
        """The lines appended after `tail` (known: the refs the file had), or None when
        the bytes before it changed."""
        path = self._file(unit)
        scan = UnitScan()
        seen: dict[str, int] = {}  # how often each id came up before, from the locators
        for ref in known:
            _, _, nth = ref.locator.partition("~")
            base = ref.item_id[: -len(nth) - 1] if nth else ref.item_id
            seen[base] = max(seen.get(base, 0), int(nth or 1))
        with path.open("rb") as handle:
            h = hash_prefix(handle, tail.offset, self.read_stats)
            if h is None or h.hexdigest() != tail.digest:
                return None
            start = (tail.records, tail.offset)
            lines, end, whole = self._scan_lines(unit, path, handle, start, seen, scan, h)
        scan.tail = Tail(end, h.hexdigest(), lines) if whole else None
        return scan

    def _scan_lines(
        self,
        unit: str,
        path: Path,
        handle: IO[bytes],
        start: tuple[int, int],
        seen: dict[str, int],
        scan: UnitScan,
        h: Any,
    ) -> tuple[int, int, bool]:
        """Scan the lines from the handle's position, which is after `start` (lines, bytes);
        returns (lines, bytes) at the end and whether the last line was whole (ended)."""
        refs = scan.refs
        number, offset = start
        whole = True
        stats = self.read_stats
        for line in handle:
            number += 1
            begin = offset
            offset += len(line)
            h.update(line)
            whole = line.endswith(b"\n")
            if number == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            if not line.strip():
                continue
            stats["records"] += 1
            stats["bytes"] += len(line)
            try:
                record = self._parse(unit, line)
            except _Invalid as bad:
                scan.problems.append(BadRecord(path, f"line {number}", bad.reason, bad.day))
                continue
            fixed = canonical(record.title, record.text, record.meta)
            chash = fixed.content_hash
            if fixed.repaired or record.repaired:
                scan.repairs.append(Repaired(str(path), f"line {number}", record.day))
            nth = seen[record.item_id] = seen.get(record.item_id, 0) + 1
            if nth == 1:
                refs.append(ItemRef(record.day, record.item_id, chash, str(begin)))
            else:
                item_id, locator = _nth_id(record.item_id, nth), f"{begin}~{nth}"
                refs.append(ItemRef(record.day, item_id, chash, locator))
        return number, offset, whole

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        path = self._file(unit)
        wanted = sorted({_parse_locator(loc) for loc in locators})  # seek forwards only
        if not wanted:
            return
        try:
            file = path.open("rb")
        except OSError as exc:
            yield BadRecord(path, None, f"cannot read: {exc.strerror}")
            return
        with file:
            for offset, nth in wanted:
                yield self._load_one(file, path, unit, offset, nth)

    def _load_one(
        self, file: IO[bytes], path: Path, unit: str, offset: int, nth: int
    ) -> MemoryItem | BadRecord:
        line = _line_at(file, offset)
        try:
            if line is None:
                raise _Invalid("no record starts here any more; the file changed since its scan")
            record = self._parse(unit, line)
        except _Invalid as bad:
            return BadRecord(path, f"line {_line_number(file, offset)}", bad.reason, bad.day)
        return MemoryItem(
            item_id=_nth_id(record.item_id, nth),
            source=self.name,
            ts=record.ts,
            day=record.day,
            title=record.title,
            text=record.text,
            meta=record.meta,
            repaired=record.repaired,
        )

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such JSONL file or folder for {self.name!r}")
        return sorted(
            p
            for p in self.path.iterdir()
            if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()
        )

    def _file(self, unit: str) -> Path:
        return self.path / unit if self.path.is_dir() else self.path

    def _parse(self, unit: str, line: bytes) -> _Record:
        """One line as a record; raises _Invalid saying what is wrong with it."""
        try:
            decoded, repaired = line.decode("utf-8"), False
        except UnicodeDecodeError:  # bytes that are not UTF-8: U+FFFD, and a warning
            decoded, repaired = line.decode("utf-8", errors="replace"), True
        try:
            record = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise _Invalid(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise _Invalid(f"not a JSON object but {type(record).__name__}")
        fields = self.fields
        ts = _timestamp(_take(record, fields.ts), fields.ts, self.tz)
        day = day_of(ts, self.tz)
        text = _take(record, fields.text)
        if not isinstance(text, str):
            what = "missing" if text is None else f"not a string but {type(text).__name__}"
            raise _Invalid(f"text field {fields.text!r} is {what}", day)
        title = _as_text(_take(record, fields.title)) if fields.title else ""
        ident = _as_text(_take(record, fields.id)) if fields.id else ""
        raw_id = f"jsonl:{unit}:{ident or _hash_id(ts, text)}"
        item_id = repair_text(raw_id)
        return _Record(
            item_id=item_id,
            ts=ts,
            day=day,
            title=title.strip() or _title_from(text),
            text=text,
            meta=record,  # what is left once the named fields are taken out
            repaired=repaired or item_id != raw_id,
        )


def _fields(name: str, options: dict[str, Any]) -> _Fields:
    """The field-name options, checked: ts and text are required, title and id may be ""."""
    unknown = sorted(set(options) - set(FIELD_DEFAULTS))
    if unknown:
        raise ConfigError(f"source {name!r}: unknown jsonl option(s) {', '.join(unknown)}")
    values = {**FIELD_DEFAULTS, **options}
    for key, value in values.items():
        if not isinstance(value, str) or (key in ("ts_field", "text_field") and not value):
            raise ConfigError(f"source {name!r}: {key} must be a field name, not {value!r}")
    return _Fields(
        ts=values["ts_field"],
        text=values["text_field"],
        title=values["title_field"],
        id=values["id_field"],
    )


def _line_at(file: IO[bytes], offset: int) -> bytes | None:
    """The non-blank line starting at offset, or None when no line starts there now."""
    if offset > 0:
        file.seek(offset - 1)
        if file.read(1) != b"\n":
            return None
    else:
        file.seek(0)
    line = file.readline()
    if offset == 0 and line.startswith(BOM):
        line = line[len(BOM) :]
    return line if line.strip() else None


def _line_number(file: IO[bytes], offset: int) -> int:
    """The 1-based line at a byte offset; only needed to report a bad record."""
    file.seek(0)
    return file.read(offset).count(b"\n") + 1


def _parse_locator(locator: str) -> tuple[int, int]:
    """A locator, `offset` or `offset~n` (the n-th repeat of an id), as (offset, n)."""
    offset, _, nth = locator.partition("~")
    return int(offset), int(nth or 1)


def _nth_id(item_id: str, nth: int) -> str:
    """Repeats of one id in a unit get a suffix, so ids stay unique within the source."""
    return item_id if nth == 1 else f"{item_id}~{nth}"


def _take(record: dict[str, Any], field: str) -> Any:
    """Remove and return a field: the exact key, else a dotted path; None when absent.

    Containers the removal leaves empty go too, so meta keeps only what the record adds.
    """
    if field in record:
        return record.pop(field)
    if "." not in field:
        return None
    parts = field.split(".")
    chain = [record]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return None
        chain.append(child)
    if parts[-1] not in chain[-1]:
        return None
    value = chain[-1].pop(parts[-1])
    for parent, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
        if parent[part]:
            break
        del parent[part]
    return value


def _timestamp(value: Any, field: str, tz: tzinfo) -> datetime:
    """ISO 8601 (naive means local to tz) or epoch s/ms/µs/ns, as an aware UTC datetime."""
    if isinstance(value, str):
        # Digits are an epoch number (Slack writes "1709251200.123456"), never ISO's
        # basic form: fromisoformat would read "1701010100000" (ms) as the year 1701.
        if _NUMBER.fullmatch(value):
            return _from_epoch(float(value))
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Invalid(f"timestamp {value!r} is not ISO 8601") from None
        try:  # 0001-01-01T00:00+01:00 is before the first instant a datetime holds in UTC
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
        except OverflowError:
            raise _Invalid(f"timestamp {value!r} is out of range") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value)
    if value is None:
        raise _Invalid(f"timestamp field {field!r} is missing")
    raise _Invalid(f"timestamp {value!r} is neither ISO 8601 text nor an epoch number")


def _from_epoch(value: float) -> datetime:
    """Epoch seconds, or ms/µs/ns told apart by magnitude; NaN, inf and huge ints fail."""
    try:
        seconds = float(value)
        for threshold, scale in _EPOCH_SCALES:
            if abs(seconds) > threshold:
                seconds /= scale
                break
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Invalid(f"timestamp {value!r} is out of range") from None


def _as_text(value: Any) -> str:
    """A title or id as text: strings as they are, other JSON values in canonical form."""
    if value is None:
        return ""
    return value if isinstance(value, str) else canonical_json(value)


def _title_from(text: str) -> str:
    """The first non-blank line of the text, cut to TITLE_CHARS."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:TITLE_CHARS].rstrip()
    return ""


def _hash_id(ts: datetime, text: str) -> str:
    """An id from what the record says, not where it sits, so inserted lines do not move it.

    The instant is spelled as whole microseconds since the epoch: exact, and the same
    whichever way the export wrote it (ISO, offset, epoch ms), at a fraction of isoformat's cost.
    """
    micros = (ts - _EPOCH) // _MICROSECOND
    # surrogatepass: a lone surrogate still hashes (the text itself is repaired later)
    return hashlib.sha256(f"{micros}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


SOURCE = JsonlSource
