"""Mail archives: one mbox file, or a folder of `*.mbox` files, each file a unit.

Messages are found by scanning for "From " separator lines rather than through
`mailbox.mbox`, so a scan is one pass over the bytes and a message's locator is its
byte range: `load` seeks straight to it without indexing the whole file again.

Messages are read by a small MIME reader over stdlib pieces (`binascii`, `codecs`,
`email.utils`, `html.parser`) rather than by `email.parser`: with the default policy,
parsing and reading the headers cost about 20 times as much, too slow for archives of
tens of thousands of messages. It reads what mail clients read: text/plain parts
(else HTML as text), charsets with fallbacks, RFC 2047 words and RFC 2231 names.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import mmap
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from email.message import Message
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem, canonical_json
from softcopy.memory.sources.base import ItemRef, UnitScan, day_of

KIND = "mbox"

_SEPARATOR = re.compile(rb"\nFrom ")
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_HEAD_BLOCK = re.compile(rb"(?:[!-9;-~]+[ \t]*:.*(?:\r?\n[ \t].*)*(?:\n|\Z))*")
_HEADER = re.compile(r"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
_BHEADER = re.compile(_HEADER.pattern.encode(), re.MULTILINE)
_FOLD = re.compile(r"\r?\n")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_WHITESPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_TYPES = ("text/plain", "text/html")
_PLAIN_CODECS = frozenset({"utf-8", "windows-1252", "cp1252", "latin-1", "iso8859-15", "ascii"})
_SIMPLE_ADDRESSES = re.compile(r'["(\\:;]')


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
    try:
        msg = _parse_part(_unquote(raw.partition(b"\n")[2]))
    except Exception as exc:  # a last guard: one odd message must not stop the scan
        return BadRecord(file, where, f"cannot parse message: {exc!r}")
    if not msg.headers:
        return BadRecord(file, where, "cannot parse message: no headers")
    date_raw = msg.header("date")
    if not date_raw:
        return BadRecord(file, where, "no Date header")
    ts = _timestamp(date_raw)
    if ts is None:
        return BadRecord(file, where, f"unreadable Date header {date_raw!r}")
    day = day_of(ts, tz)
    try:
        return _item(msg, date_raw, ts, day, source)
    except Exception as exc:  # html.parser, base64 and friends fail in many ways on junk
        return BadRecord(file, where, f"cannot parse message: {exc!r}", day)


def _item(msg: _Part, date_raw: str, ts: datetime, day: date, source: str) -> MemoryItem:
    """Title, text and meta of a message; its id is the Message-ID, else a content hash."""
    title = " ".join(_decode_words(msg.header("subject")).split())
    text = _body_text(msg)
    sender = ", ".join(_addresses(msg.headers.get("from", [])[:1]))
    sender = sender or " ".join(_decode_words(msg.header("from")).split())
    meta: dict[str, Any] = {"from": sender, "to": _addresses(msg.headers.get("to", []))}
    if cc := _addresses(msg.headers.get("cc", [])):
        meta["cc"] = cc
    if attachments := _attachments(msg):
        meta["attachments"] = attachments
    message_id = msg.header("message-id").strip("<> \t")
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


# --- MIME entities ----------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    """One MIME entity: unfolded, decoded header values by lower-case name, and raw body."""

    headers: dict[str, list[str]]
    body: bytes
    ctype: str = "text/plain"
    params: dict[str, str] = field(default_factory=dict)
    disposition: str = ""
    filename: str | None = None
    _children: list[_Part] | None = None

    def header(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0] if values else ""

    def is_attachment(self) -> bool:
        """A file rather than text to read: marked so, or a named non-text leaf."""
        if self.ctype.startswith("multipart/"):
            return False
        if self.disposition == "attachment":
            return True
        return self.ctype not in _TEXT_TYPES and self.filename is not None

    def children(self) -> list[_Part]:
        """The sub-parts of a multipart, or the message inside a message/rfc822."""
        if self._children is None:
            self._children = self._read_children()
        return self._children

    def _read_children(self) -> list[_Part]:
        if self.ctype == "message/rfc822":
            return [_parse_part(self.body)]
        if not self.ctype.startswith("multipart/") or not self.params.get("boundary"):
            return []
        boundary = self.params["boundary"].encode("utf-8", "surrogateescape")
        return [_parse_part(p) for p in _split_multipart(self.body, boundary)]

    def payload(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        cte = self.header("content-transfer-encoding").strip().lower()
        if cte == "base64":
            return _b64decode(self.body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(self.body)
        return self.body


def _parse_part(data: bytes) -> _Part:
    """Split one entity into headers and body and read the headers that shape it."""
    headers, body_start = _parse_headers(data)
    part = _Part(headers, data[body_start:])
    ctype, part.params = _split_params(part.header("content-type"))
    part.ctype = ctype if "/" in ctype else "text/plain"
    part.disposition, disposition_params = _split_params(part.header("content-disposition"))
    name = disposition_params.get("filename") or part.params.get("name")
    part.filename = _decode_words(name) if name else None
    return part


def _parse_headers(data: bytes) -> tuple[dict[str, list[str]], int]:
    """Unfolded header values by lower-case name, and where the body starts.

    Headers end at a blank line or, as in the stdlib parser, at the first line that is
    not a header. Raw 8-bit values are read as UTF-8, else Windows-1252.
    """
    block = _HEAD_BLOCK.match(data)
    end = block.end() if block else 0
    try:
        pairs = _HEADER.findall(data[:end].decode("utf-8"))
    except UnicodeDecodeError:
        pairs = [(n.decode(), _decode_bytes(v, None)) for n, v in _BHEADER.findall(data, 0, end)]
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        if "\n" in value:
            value = _FOLD.sub("", value)
        headers.setdefault(name.lower(), []).append(value.strip())
    if data.startswith(b"\r\n", end):
        return headers, end + 2
    return headers, end + 1 if data.startswith(b"\n", end) else end


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between "--boundary" lines, up to the closing "--boundary--"."""
    marker = b"--" + boundary
    parts: list[bytes] = []
    start: int | None = None
    pos = 0
    while (i := body.find(marker, pos)) != -1:
        line_end = body.find(b"\n", i)
        line_end = len(body) if line_end == -1 else line_end
        tail = body[i + len(marker) : line_end].strip()
        pos = line_end
        if (i and body[i - 1] != 0x0A) or tail not in (b"", b"--"):
            continue  # not a delimiter line, only text that contains the boundary
        if start is not None:
            parts.append(body[start:i].removesuffix(b"\n").removesuffix(b"\r"))
        if tail == b"--":
            return parts
        start = line_end + 1
    if start is not None:
        parts.append(body[start:])
    return parts


def _split_params(value: str) -> tuple[str, dict[str, str]]:
    """A structured header's main value (lower-case) and its parameters."""
    main = value.partition(";")[0].strip().lower()
    params: dict[str, str] = {}
    if ";" not in value:
        return main, params
    for m in _PARAM.finditer(value):
        raw = m[2].strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) > 1:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(m[1].lower(), raw)
    if any("*" in key for key in params):
        params |= _rfc2231_params(value)
    return main, params


def _rfc2231_params(value: str) -> dict[str, str]:
    """Parameters in RFC 2231 form (name*=utf-8''caf%C3%A9, continuations), via the stdlib."""
    holder = Message()
    holder["X"] = value
    return {k.lower(): collapse_rfc2231_value(v) for k, v in holder.get_params(header="x")[1:]}


def _b64decode(data: bytes) -> bytes:
    """Lenient base64, as mail clients read it: junk skipped, missing padding restored."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(clean) % 4 == 1:
            clean = clean[:-1]  # a lone trailing character carries no whole byte
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


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


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; the space between two adjacent words is dropped."""
    if "=?" not in value:
        return value
    out: list[str] = []
    run: tuple[str, bytes] | None = None  # adjacent words in one charset, decoded together
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        charset, data = m[1].partition("*")[0].lower(), _word_bytes(m[2], m[3])
        if run and not between.strip() and run[0] == charset:
            run = (charset, run[1] + data)
        else:
            if run:
                out.append(_decode_bytes(run[1], run[0]))
            out.append("" if run and not between.strip() else between)
            run = (charset, data)
        pos = m.end()
    if run:
        out.append(_decode_bytes(run[1], run[0]))
    out.append(value[pos:])
    return "".join(out)


def _word_bytes(encoding: str, text: str) -> bytes:
    data = text.encode("ascii", "replace")
    return _b64decode(data) if encoding in "bB" else binascii.a2b_qp(data, header=True)


def _addresses(values: list[str]) -> list[str]:
    """Every address in these headers as "Name <addr>" (or "addr"), names decoded."""
    out = []
    for value in values:
        for name, addr in _address_pairs(value):
            name = " ".join(_decode_words(name).split())
            if name or addr:
                out.append(f"{name} <{addr}>" if name else addr)
    return out


def _address_pairs(value: str) -> list[tuple[str, str]]:
    """(name, address) pairs; plain lists are split here, anything subtle by the stdlib."""
    if not _SIMPLE_ADDRESSES.search(value):
        pairs = [_simple_pair(p.strip()) for p in value.split(",") if p.strip()]
        if None not in pairs:
            return pairs  # type: ignore[return-value]
    return getaddresses([value])


def _simple_pair(piece: str) -> tuple[str, str] | None:
    """("Name", "addr") from "Name <addr>" or "addr"; None when it is not that simple."""
    if piece[-1] == ">":
        name, bracket, addr = piece[:-1].rpartition("<")
        return (name.strip(), addr.strip()) if bracket and "<" not in name else None
    return None if " " in piece or "<" in piece or ">" in piece else ("", piece)


# --- body -------------------------------------------------------------------------------


def _body_text(msg: _Part) -> str:
    """The readable text: text/plain parts, else text/html stripped of its tags."""
    texts = [_html_to_text(t) if kind == "html" else t for kind, t in _text_parts(msg)]
    return "\n\n".join(t.replace("\r\n", "\n").strip() for t in texts if t.strip())


def _text_parts(part: _Part) -> list[tuple[str, str]]:
    """("plain" | "html", text) of the parts a reader sees, in order."""
    if part.is_attachment():
        return []
    ctype, params = part.ctype, part.params
    children = part.children()
    if ctype == "multipart/alternative":
        return _best_alternative([_text_parts(c) for c in children])
    if ctype == "multipart/related" and children:
        return _text_parts(children[0])
    if children:
        return [t for c in children for t in _text_parts(c)]
    if ctype in _TEXT_TYPES or ctype.startswith("multipart/"):  # no boundary: show as text
        kind = "html" if ctype == "text/html" else "plain"
        return [(kind, _decode_bytes(part.payload(), params.get("charset")))]
    return []


def _best_alternative(options: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """An alternative made only of plain text if there is one, else the first with text."""
    usable = [o for o in options if o]
    plain = [o for o in usable if all(kind == "plain" for kind, _ in o)]
    return (plain or usable or [[]])[0]


def _attachments(part: _Part) -> list[str]:
    """File names (else content types) of the attached parts, in order."""
    if part.is_attachment():
        return [part.filename or part.ctype]
    return [name for child in part.children() for name in _attachments(child)]


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document; source line breaks are only spaces."""

    _SKIP = frozenset({"script", "style"})
    _BREAKS = frozenset(
        {"br", "p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "hr"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.in_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAKS:
            self.chunks.append("\n")
            self.in_pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BREAKS:
            self.chunks.append("\n")
            self.in_pre = max(0, self.in_pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(data if self.in_pre else _WHITESPACE.sub(" ", data))


def _html_to_text(html: str) -> str:
    """Visible text, one line per block, runs of whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).split("\n"))
    return "\n".join(line for line in lines if line)
