"""Mail archives: one mbox file, or a folder of `*.mbox` files, each file a unit.

Messages are found by scanning for "From " separator lines rather than through
`mailbox.mbox`, so a scan is one pass over the bytes and a message's locator is its
byte range: `load` seeks straight to it without indexing the whole file again.

Each message is parsed by the stdlib `email` package with its legacy `compat32` policy:
the default policy builds header objects that make it several times slower, too slow for
archives of tens of thousands of messages. The item reads what mail clients show:
text/plain parts (else HTML as text), bodies in their declared charset with fallbacks.

A message's time is its `Date:` header; many real archives have messages without one, so
then the date of the mbox `From ` separator line is used, then the newest `Received:`
header's date. Only a message with none of the three is a bad record, and since its day
cannot be told it is a problem of the source (file and message number), failing no day.
Text that cannot be stored (a lone surrogate) is repaired to U+FFFD with a warning.
"""

from __future__ import annotations

import codecs
import hashlib
import mmap
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, tzinfo
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem, canonical_json
from softcopy.memory.sources.base import ItemRef, Repaired, UnitScan, day_of
from softcopy.memory.sources.html_text import html_to_text

KIND = "mbox"

_PARSER = BytesParser(policy=compat32)
_SEPARATOR = re.compile(rb"\nFrom ")
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_TYPES = ("text/plain", "text/html")
_PLAIN_CODECS = frozenset({"utf-8", "windows-1252", "cp1252", "latin-1", "iso8859-15", "ascii"})


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
    try:
        msg = _PARSER.parsebytes(_unquote(message))
    except Exception as exc:  # a last guard: one odd message must not stop the scan
        return BadRecord(file, where, f"cannot parse message: {exc!r}")
    if not msg.keys():
        return BadRecord(file, where, "cannot parse message: no headers")
    date_raw = _header(msg, "date")
    ts = _timestamp(date_raw) if date_raw else None
    if ts is None:
        date_raw, ts = _fallback_time(msg, from_line)
    if ts is None:
        said = (
            f"unreadable Date header {_header(msg, 'date')!r}" if msg["date"] else "no Date header"
        )
        return BadRecord(file, where, f"{said}, and no date in its From line or Received headers")
    day = day_of(ts, tz)
    try:
        return _item(msg, date_raw, ts, day, source)
    except Exception as exc:  # html.parser and payload decoding fail in many ways on junk
        return BadRecord(file, where, f"cannot parse message: {exc!r}", day)


def _item(msg: Message, date_raw: str, ts: datetime, day: date, source: str) -> MemoryItem:
    """Title, text and meta of a message; its id is the Message-ID, else a content hash."""
    title = " ".join(_decode_words(_header(msg, "subject")).split())
    parts, attachments = _walk(msg)
    texts = [html_to_text(t) if kind == "html" else t for kind, t in parts]
    text = "\n\n".join(t.replace("\r\n", "\n").strip() for t in texts if t.strip())
    sender = ", ".join(_addresses(_headers(msg, "from")[:1]))
    sender = sender or " ".join(_decode_words(_header(msg, "from")).split())
    meta: dict[str, Any] = {"from": sender, "to": _addresses(_headers(msg, "to"))}
    if cc := _addresses(_headers(msg, "cc")):
        meta["cc"] = cc
    if attachments:
        meta["attachments"] = attachments
    message_id = _header(msg, "message-id").strip("<> \t")
    if not message_id:
        key = canonical_json([date_raw, meta["from"], title, text]).encode()
        message_id = hashlib.sha256(key).hexdigest()[:24]
    return MemoryItem(
        item_id=f"mbox:{message_id}",
        source=source,
        ts=ts,
        day=day,
        title=title,
        text=text,
        meta=meta,
    )


def _fallback_time(msg: Message, from_line: bytes) -> tuple[str, datetime | None]:
    """The time of a message without a readable Date header: the date of its mbox `From `
    line (`From sender Sat Jan  3 01:05:34 1996`), else the newest `Received:` date."""
    sender_and_date = from_line.decode("ascii", errors="replace").rstrip("\r")[5:].strip()
    after_sender = sender_and_date.partition(" ")[2].strip()
    if after_sender and (ts := _timestamp(after_sender)) is not None:
        return after_sender, ts
    received = [
        (ts, value)
        for value in (v.rpartition(";")[2].strip() for v in _headers(msg, "received"))
        if value and (ts := _timestamp(value)) is not None
    ]
    if received:
        ts, value = max(received)
        return value, ts
    return "", None


def _unquote(data: bytes) -> bytes:
    """Undo mboxrd quoting: ">From " at a line start was "From " in the message."""
    return _QUOTED_FROM.sub(rb"\1", data) if b">From " in data else data


def _timestamp(value: str) -> datetime | None:
    """The Date header as an aware UTC datetime; a zone-less date is taken as UTC."""
    try:
        ts = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


# --- headers ----------------------------------------------------------------------------


def _headers(msg: Message, name: str) -> list[str]:
    """Every value of a header as text, unfolded and stripped."""
    return [_header_text(value) for value in msg.get_all(name, [])]


def _header(msg: Message, name: str) -> str:
    """The first value of a header as text, or ""."""
    value = msg.get(name)
    return "" if value is None else _header_text(value)


def _header_text(value: str | Header) -> str:
    """compat32 hands back a value holding raw 8-bit bytes as a Header: read those bytes
    as UTF-8, else Windows-1252. Encoded words are left for `_decode_words`."""
    if isinstance(value, Header):
        value = _decode_bytes(b"".join(data for data, _ in decode_header(value)), None)
    return _FOLD.sub("", value).strip()


def _decode_words(value: str) -> str:
    """Decode the RFC 2047 words of an unfolded value, each charset with fallbacks."""
    if "=?" not in value:
        return value
    try:
        return "".join(_word_text(data, charset) for data, charset in decode_header(value))
    except HeaderParseError:  # base64 that cannot be decoded: show the value as it is
        return value


def _word_text(data: bytes | str, charset: str | None) -> str:
    """One piece from `decode_header`: text between words comes back as raw-unicode-escape
    bytes, a charset may carry an RFC 2231 language ("utf-8*en")."""
    if isinstance(data, str):  # no encoded word after all
        return data
    if charset is not None:
        return _decode_bytes(data, charset.partition("*")[0])
    try:
        return data.decode("raw-unicode-escape")
    except UnicodeDecodeError:  # a literal backslash-u that is no escape
        return data.decode("latin-1")


def _addresses(values: list[str]) -> list[str]:
    """Every address in these headers as "Name <addr>" (or "addr"), names decoded."""
    return [address for value in values for address in _address_list(value)]


@lru_cache(maxsize=4096)  # the same few senders and recipients come back again and again
def _address_list(value: str) -> tuple[str, ...]:
    out = []
    for name, addr in getaddresses([value]):
        name = " ".join(_decode_words(name).split())
        if name or addr:
            out.append(f"{name} <{addr}>" if name else addr)
    return tuple(out)


# --- body -------------------------------------------------------------------------------


def _walk(part: Message) -> tuple[list[tuple[str, str]], list[str]]:
    """("plain" | "html", text) of the parts a reader sees, in order, and the names (else
    content types) of the attached files."""
    ctype = part.get_content_type()
    if _is_attachment(part, ctype):
        return [], [_filename(part) or ctype]
    if part.is_multipart():  # a multipart's parts, or the message inside a message/rfc822
        walked = [_walk(child) for child in part.get_payload()]
        attachments = [name for _, names in walked for name in names]
        if ctype == "multipart/alternative":
            return _best_alternative([texts for texts, _ in walked]), attachments
        if ctype == "multipart/related" and walked:
            return walked[0][0], attachments
        return [t for texts, _ in walked for t in texts], attachments
    if ctype in _TEXT_TYPES or ctype.startswith("multipart/"):  # no parts found: as text
        payload = part.get_payload(decode=True) or b""
        text = _decode_bytes(payload, part.get_content_charset())
        return [("html" if ctype == "text/html" else "plain", text)], []
    return [], []


def _best_alternative(options: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """An alternative made only of plain text if there is one, else the first with text."""
    usable = [o for o in options if o]
    plain = [o for o in usable if all(kind == "plain" for kind, _ in o)]
    return (plain or usable or [[]])[0]


def _is_attachment(part: Message, ctype: str) -> bool:
    """A file rather than text to read: marked so, or a named non-text leaf."""
    if ctype.startswith("multipart/"):
        return False
    if part.get_content_disposition() == "attachment":
        return True
    return ctype not in _TEXT_TYPES and part.get_filename() is not None


def _filename(part: Message) -> str | None:
    """The file name of a part: RFC 2231 by the stdlib, RFC 2047 and raw 8-bit here."""
    name = part.get_filename()
    if name and "\ufffd" in name:  # raw 8-bit bytes, which compat32 cannot read as text
        holder = Message()
        for key in ("content-type", "content-disposition"):
            holder[key] = _header(part, key)
        name = holder.get_filename()
    return _decode_words(name) if name else None


# --- decoding text ----------------------------------------------------------------------


def _decode_bytes(data: bytes, declared: str | None) -> str:
    """Text in its declared charset, else UTF-8, else Windows-1252, else Latin-1."""
    for charset in _charset_candidates(declared):
        try:
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
        # UTF-8 and the 8-bit codecs never yield lone surrogates; UTF-7 and others may,
        # and those could not be stored as UTF-8.
        return text if charset in _PLAIN_CODECS else _SURROGATE.sub("\ufffd", text)
    return data.decode("latin-1")


@lru_cache(maxsize=256)
def _charset_candidates(declared: str | None) -> tuple[str, ...]:
    """ISO-8859-1 is read as its Windows-1252 superset, as browsers do; unknown → Latin-1."""
    try:
        codec = codecs.lookup(declared or "utf-8").name
    except LookupError:
        return ("latin-1",)
    if codec in ("iso8859-1", "ascii"):
        return ("utf-8", "windows-1252") if codec == "ascii" else ("windows-1252",)
    return (codec, "utf-8", "windows-1252")
