"""Notes: a folder of Markdown, Org and plain-text files, one memory item per file.

Plain folders, Obsidian vaults and Logseq graphs work as they are. A note's day is a date
in its file name (`2024-03-01`, Logseq's journal `2024_03_01`, `20240301`, Zettelkasten
`202403011230`), else a `date`, `created` or `date created` in its header (YAML front
matter, Org `#+date:`, Logseq `date::`), else its modification time. Header dates are
read as the apps write them: ISO dates and date-times (Obsidian's Date and Date & time
properties: `2024-03-01`, `2024-03-01T10:00`), Org timestamps, Logseq's `[[Mar 1st,
2024]]` and the Obsidian Linter's `Friday, March 1st 2024, 10:00:00 am`; a time without
an offset is wall-clock time in the configured timezone. The header is parsed by hand: it
is a handful of `key: value` lines, and a YAML dependency would buy nothing but failure
modes.

A date that is written but does not exist (`2024-02-30.md`, `date: 2024-13-45`), or a
header date that is no date at all (`date: yesterday`, `date: 99999-01-01`), is never
silently replaced by the modification time: unless the other place holds a valid date, the
note is a bad record naming the file and the value (a problem of the source, since its day
cannot be told). Only a template placeholder never filled in (`{{date}}`, `<% ... %>`)
counts as no date written. Bytes that are not UTF-8 are read as U+FFFD, with a warning (items.py).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import UnitScan, day_of

KIND = "notes"
DEFAULT_EXTENSIONS = (".md", ".markdown", ".org", ".txt")
# A folder named `logseq` holding any of these is Logseq's own (backups, settings), not notes.
LOGSEQ_MARKERS = ("config.edn", "custom.css", "bak", "version-files", "pages-metadata.edn")
BOM = b"\xef\xbb\xbf"

Field = str | list[str]

_YAML_KEY = re.compile(r"^(?P<key>[^\s#\-:][^:]*?)\s*:(?:[ \t]+(?P<value>.*?))?\s*$")
_LOGSEQ_PROP = re.compile(r"^(?P<key>[A-Za-z][\w\-]*)::(?:[ \t]+(?P<value>.*?))?\s*$")
_ORG_KEYWORD = re.compile(r"^#\+(?P<key>[A-Za-z_][\w\-]*):(?:[ \t]+(?P<value>.*?))?\s*$")
_ORG_PROP = re.compile(r"^\s*:(?P<key>[A-Za-z_][\w\-]*):(?:[ \t]+(?P<value>.*?))?\s*$")
_NAME_SEPARATED = re.compile(r"(?<!\d)(\d{4})([-_.])(\d{2})\2(\d{2})(?!\d)")
# Also Zettelkasten ids (YYYYMMDDHHmm[ss]), as Obsidian's unique note creator writes them.
_NAME_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(?!\d)")
_LOOSE_DATE = re.compile(
    r"^(\d{4})[-_/.](\d{1,2})[-_/.](\d{1,2})"  # the date
    r"(?:\s+[^\W\d_]+\.?)?"  # an Org weekday: <2024-03-01 Fri>
    r"(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"  # an optional time
)
# `Mar 1st, 2024` (Logseq's journal title), and Obsidian Linter's default timestamp
# `Friday, March 1st 2024, 10:00:00 am` (moment.js "dddd, MMMM Do YYYY, h:mm:ss a").
_MONTH_NAME_DATE = re.compile(
    r"^(?:[A-Za-z]+,\s+)?([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})"
    r"(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$"
)
# Header keys that date a note, in order: `date` (Obsidian's and Logseq's own property),
# `created` (Obsidian templates, Templater), `date created` (Obsidian Linter's default).
_DATE_KEYS = ("date", "created", "date created")
# A template's placeholder never filled in: core Templates' {{date}}, Templater's <% ... %>.
_TEMPLATE = re.compile(r"\{\{.*\}\}|<%.*%>")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_H1 = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_INLINE_TAG = re.compile(r"(?<!\S)#(?:\[\[([^\]\n]+)\]\]|(\w[\w/\-]*))")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_WIKILINK = re.compile(r"\[\[([^\]\n]+)\]\]")
_TAG_SPLIT = re.compile(r"[,\s:]+")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")
_TAG_FIELDS = ("tags", "tag", "filetags")


@dataclass(frozen=True, slots=True)
class _Dated:
    """When a note happened: its day, and the instant (midnight local unless a time is known)."""

    day: date
    ts: datetime


class NotesSource:
    """A folder of notes, read one file per unit; the unit key is the file's relative path."""

    kind: ClassVar[str] = KIND

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self.extensions = _extensions(name, options)

    def units(self) -> Iterator[tuple[str, str]]:
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such notes folder for source {self.name!r}")
        for rel, st in _walk(self.path, "", self.extensions):
            yield rel, f"{st.st_mtime_ns}:{st.st_size}"

    def scan_unit(self, unit: str) -> UnitScan:
        got = self._read(unit)
        if isinstance(got, BadRecord):
            return UnitScan(problems=[got])
        scan = UnitScan()
        scan.add_item(got, "", self.path / unit, None)
        return scan

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        # The whole file is the one item, so any locator asks for it; ask once.
        if any(True for _ in locators):
            yield self._read(unit)

    def _read(self, unit: str) -> MemoryItem | BadRecord:
        """The item of one note file, or why it cannot be read."""
        path = self.path / unit
        stem = Path(unit).stem
        named = _date_in_name(stem, self.tz)
        try:
            data = path.read_bytes()
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError as exc:
            return BadRecord(path, None, f"cannot read: {exc.strerror}", day=named and named.day)
        text, repaired = _decode(data)
        fields, body = _split_header(text.replace("\r\n", "\n").replace("\r", "\n"))
        dated = named or _date_field(fields, self.tz)
        if dated is None:
            if bad := _invalid_name_date(stem):
                return BadRecord(path, None, f"the file name holds no valid date: {bad!r}")
            if bad := _invalid_field_date(fields):
                return BadRecord(path, None, f"the date field holds no valid date: {bad!r}")
            dated = _Dated(day_of(mtime, self.tz), mtime)
        body = _LEADING_BLANK_LINES.sub("", body).rstrip()
        prose = list(_prose_lines(body))
        org = Path(unit).suffix.lower() == ".org"
        return MemoryItem(
            item_id=f"notes:{unit}",
            source=self.name,
            ts=dated.ts,
            day=dated.day,
            title=_title(fields, [] if org else prose) or stem,
            text=body,
            meta={"path": unit, "tags": _tags(fields, prose)},
            repaired=repaired,
        )


def _extensions(name: str, options: dict[str, Any]) -> frozenset[str]:
    """The `extensions` option, normalised to lower-case suffixes with a dot."""
    unknown = sorted(set(options) - {"extensions"})
    if unknown:
        raise ConfigError(f"source {name!r}: unknown notes option(s) {', '.join(unknown)}")
    exts = options.get("extensions", DEFAULT_EXTENSIONS)
    if isinstance(exts, str) or not all(isinstance(e, str) and e.strip(".") for e in exts):
        raise ConfigError(f"source {name!r}: extensions must be a list like ['.md', '.org']")
    return frozenset("." + e.strip().lstrip(".").lower() for e in exts)


def _walk(root: Path, rel: str, extensions: frozenset[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Note files under root/rel in name order, skipping hidden and Logseq-internal folders."""
    try:
        with os.scandir(root / rel) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        if not rel:
            raise
        return  # an unreadable subfolder holds nothing we can read
    for entry in entries:
        if entry.name.startswith("."):  # .obsidian, .git, .trash, editor lock files
            continue
        key = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_dir(follow_symlinks=False):
            if not _is_logseq_internal(entry):
                yield from _walk(root, key, extensions)
        elif os.path.splitext(entry.name)[1].lower() in extensions:
            try:
                st = entry.stat()
            except OSError:  # a dangling symlink
                continue
            if stat.S_ISREG(st.st_mode):
                yield key, st


def _is_logseq_internal(entry: os.DirEntry[str]) -> bool:
    return entry.name == "logseq" and any(
        os.path.lexists(os.path.join(entry.path, m)) for m in LOGSEQ_MARKERS
    )


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text, with or without a byte-order mark, and whether bad bytes became U+FFFD."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


# --- header ----------------------------------------------------------------------------


def _split_header(text: str) -> tuple[dict[str, Field], str]:
    """The note's header fields (lower-case keys) and the body after the header."""
    lines = text.split("\n")
    first = lines[0]
    if first.rstrip() == "---":
        found = _yaml_front_matter(lines)
        if found is not None:
            return found
    if _LOGSEQ_PROP.match(first):
        return _leading_fields(lines, _LOGSEQ_PROP)
    if first.startswith("#+") or first.strip().upper() == ":PROPERTIES:":
        return _org_header(lines)
    return {}, text


def _yaml_front_matter(lines: list[str]) -> tuple[dict[str, Field], str] | None:
    """Front matter between `---` lines, or None when the block is not simple YAML."""
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            fields = _simple_yaml(lines[1:end])
            return None if fields is None else (fields, "\n".join(lines[end + 1 :]))
    return None


def _simple_yaml(lines: list[str]) -> dict[str, Field] | None:
    """`key: value`, `key: [a, b]` and `- item` lists; nested blocks are skipped.

    A line that fits none of these means the `---` was a rule, not front matter: None.
    """
    fields: dict[str, Field] = {}
    key = None
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _YAML_KEY.match(line)
        if match and not line[0].isspace():
            key = match["key"].strip().lower()
            fields[key] = _yaml_value(match["value"] or "")
        elif key is not None and (stripped == "-" or stripped.startswith("- ")):
            items = fields[key] if isinstance(fields[key], list) else []
            fields[key] = [*items, _scalar(stripped[1:])]
        elif key is None or not line[0].isspace():
            return None
        # Other indented lines continue a nested or block value we do not need.
    return fields


def _yaml_value(value: str) -> Field:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        return [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
    if value[:1] in ("|", ">"):
        return ""  # a block scalar; its lines follow, indented, and are skipped
    return _scalar(re.sub(r"\s+#.*$", "", value) if value[:1] not in "'\"" else value)


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _leading_fields(lines: list[str], pattern: re.Pattern[str]) -> tuple[dict[str, Field], str]:
    """Fields from the leading lines that match `pattern` (key, value); the rest is the body."""
    fields: dict[str, Field] = {}
    end = 0
    while end < len(lines) and (match := pattern.match(lines[end])):
        fields[match["key"].lower()] = _scalar(match["value"] or "")
        end += 1
    return fields, "\n".join(lines[end:])


def _org_header(lines: list[str]) -> tuple[dict[str, Field], str]:
    """An optional top `:PROPERTIES:` drawer (org-roam) then `#+key: value` lines."""
    fields: dict[str, Field] = {}
    start = 0
    if lines[0].strip().upper() == ":PROPERTIES:":
        close = next((i for i, line in enumerate(lines) if line.strip().upper() == ":END:"), None)
        if close is None:
            return {}, "\n".join(lines)
        drawer, _ = _leading_fields(lines[1:close], _ORG_PROP)
        fields.update(drawer)
        start = close + 1
    keywords, body = _leading_fields(lines[start:], _ORG_KEYWORD)
    fields.update(keywords)
    return fields, body


# --- day, title, tags ------------------------------------------------------------------


def _date_in_name(stem: str, tz: tzinfo) -> _Dated | None:
    """A date in a file's stem: 2024-03-01, 2024_03_01, 20240301, 202403011230 (with time)."""
    for match in _NAME_SEPARATED.finditer(stem):
        if dated := _local(tz, match[1], match[3], match[4]):
            return dated
    for match in _NAME_COMPACT.finditer(stem):
        day = (match[1], match[2], match[3])
        time = (match[4], match[5], match[6] or "0") if match[4] else ()
        # Digits that are a date but not a time (20240301 9999) still name the day.
        if dated := _local(tz, *day, *time) or _local(tz, *day):
            return dated
    return None


def _invalid_name_date(stem: str) -> str | None:
    """A date in the file name that does not exist (2024-02-30, 20241301), or None.

    Digits that cannot be a date at all (a year outside 1900-2199, an 8-digit id with month
    13) are not taken for one: they are a name like any other.
    """
    for match in _NAME_SEPARATED.finditer(stem):
        if 1900 <= int(match[1]) < 2200:
            return match[0]
    for match in _NAME_COMPACT.finditer(stem):
        if 1900 <= int(match[1]) < 2200 and 1 <= int(match[2]) <= 12 and 1 <= int(match[3]) <= 31:
            return match[0]
    return None


def _invalid_field_date(fields: dict[str, Field]) -> str | None:
    """The header's `date` when it holds something that is no date (2024-13-45, 99999-01-01,
    `yesterday`), or None.

    Only a template's placeholder that was never filled in (`{{date}}`, Templater's
    `<% tp.date.now() %>`) is no date written: that note keeps to its mtime.
    """
    value = _date_value(fields)
    if not value or _TEMPLATE.search(_raw_date_value(fields)):
        return None
    return value


def _raw_date_value(fields: dict[str, Field]) -> str:
    value = next((v for k in _DATE_KEYS if isinstance(v := fields.get(k), str) and v.strip()), "")
    return value if isinstance(value, str) else ""


def _date_value(fields: dict[str, Field]) -> str:
    return _WIKILINK.sub(r"\1", _raw_date_value(fields)).strip().strip("<>[]\"'").strip()


def _date_field(fields: dict[str, Field], tz: tzinfo) -> _Dated | None:
    """The header's `date`: ISO date or datetime, Org timestamp, or `[[Mar 1st, 2024]]`."""
    value = _date_value(fields)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _loose_date(value, tz)
    if parsed.tzinfo is None:
        return _local(tz, *parsed.timetuple()[:6])
    if not 1900 <= parsed.year < 2200:  # as `_local`; 0001-01-01T00:00+01:00 has no UTC day
        return None
    ts = parsed.astimezone(UTC)
    return _Dated(day_of(ts, tz), ts)


def _loose_date(value: str, tz: tzinfo) -> _Dated | None:
    if match := _LOOSE_DATE.match(value):
        return _local(tz, *(g or "0" for g in match.groups()))
    if (match := _MONTH_NAME_DATE.match(value)) and match[1][:3].lower() in _MONTHS:
        month = _MONTHS.index(match[1][:3].lower()) + 1
        hour = int(match[4] or 0)
        if match[7] and hour <= 12:  # 12 am is midnight, 12 pm noon
            hour = hour % 12 + (12 if match[7].lower() == "pm" else 0)
        return _local(tz, match[3], month, match[2], hour, match[5] or 0, match[6] or 0)
    return None


def _local(tz: tzinfo, *parts: str | int) -> _Dated | None:
    """A wall-clock time in tz (year, month, day[, hour, minute, second]), or None if invalid."""
    numbers = [int(p) for p in parts]
    if not 1900 <= numbers[0] < 2200:
        return None
    try:
        local = datetime(*numbers, tzinfo=tz)  # type: ignore[arg-type, misc]
    except ValueError:
        return None
    return _Dated(local.date(), local.astimezone(UTC))


def _prose_lines(body: str) -> Iterator[str]:
    """Body lines outside fenced code and Org source blocks, with inline code removed."""
    fence = ""
    for line in body.split("\n"):
        marker = line.lstrip()
        if fence:
            if marker.lower().startswith(fence):
                fence = ""
            continue
        if marker.startswith(("```", "~~~")):
            fence = marker[:3]
        elif marker.lower().startswith("#+begin"):
            fence = "#+end"
        else:
            yield _INLINE_CODE.sub("", line)


def _title(fields: dict[str, Field], prose: list[str]) -> str:
    """The header's title, else the first `# heading` (Markdown only; Org `# ` is a comment)."""
    value = fields.get("title")
    if isinstance(value, str) and value.strip():
        return value.strip()
    for line in prose:
        if match := _H1.match(line):
            return match[1].strip()
    return ""


def _tags(fields: dict[str, Field], prose: list[str]) -> list[str]:
    """Header tags plus inline `#tags` and `#[[multi word]]` tags, sorted and unique."""
    found: set[str] = set()
    for name in _TAG_FIELDS:
        value = fields.get(name)
        found.update(_split_tags(value) if isinstance(value, str) else value or [])
    for line in prose:
        found.update(bracketed or word for bracketed, word in _INLINE_TAG.findall(line))
    tags = (_clean_tag(tag) for tag in found)
    return sorted({tag for tag in tags if any(ch.isalpha() for ch in tag)})


def _split_tags(value: str) -> list[str]:
    """`a, b`, `a b`, Org's `:a:b:` and Logseq's `[[multi word]], b`."""
    linked = _WIKILINK.findall(value)
    rest = _WIKILINK.sub(" ", value)
    return linked + [t for t in _TAG_SPLIT.split(rest) if t]


def _clean_tag(tag: str) -> str:
    """`#tag`, `[[tag]]` and `tag/` all mean `tag`."""
    return tag.strip().lstrip("#").strip("[]").strip().rstrip("/-")


SOURCE = NotesSource
