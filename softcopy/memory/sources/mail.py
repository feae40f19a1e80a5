"""One mail message → one memory item, for every mailbox format (mbox, Maildir).

Each message is parsed by the stdlib `email` package with its legacy `compat32` policy:
the default policy builds header objects that make it several times slower, too slow for
archives of tens of thousands of messages. The item reads what mail clients show:
text/plain parts (else HTML as text), bodies in their declared charset with fallbacks,
RFC 2047 encoded words (`=?iso-8859-1?q?...?=`, `=?utf-8?b?...?=`, `=?koi8-r?...?=`, any
charset Python knows, ISO-8859-1 read as its Windows-1252 superset as browsers do) in
subjects, names and attachment file names.

A message's time is its `Date:` header, else the date its mailbox keeps beside it (the
mbox `From ` line, the Maildir delivery time), else the newest `Received:` header's date.
Only a message with none of these is a bad record, a problem of the source since its day
cannot be told. Its id is `<prefix>:<Message-ID>`; a message without one gets a hash of
its Date (or fallback date), sender, subject and text, which a rewrite of the mailbox
leaves alone. Text that cannot be stored (a lone surrogate) is repaired to U+FFFD.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from datetime import UTC, date, datetime, tzinfo
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from softcopy.errors import BadRecord
from softcopy.memory.items import MemoryItem, canonical_json, repair_text
from softcopy.memory.sources.base import day_of
from softcopy.memory.sources.html_text import html_to_text

_PARSER = BytesParser(policy=compat32)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_TYPES = ("text/plain", "text/html")
_PLAIN_CODECS = frozenset({"utf-8", "windows-1252", "cp1252", "latin-1", "iso8859-15", "ascii"})


# --- one message ------------------------------------------------------------------------


def read_message(
    file: Path | str,
    where: str,
    raw: bytes,
    *,
    source: str,
    tz: tzinfo,
    prefix: str,
    envelope: tuple[str, str] = ("", ""),
) -> MemoryItem | BadRecord:
    """The item for one message's bytes (headers and body), or why it cannot be read.

    `envelope` is (a date the mailbox format keeps beside the message, where it is kept):
    the mbox `From ` line's date, a Maildir file name's delivery time. It is the time of a
    message whose `Date:` header is missing or unreadable, before the `Received:` headers.
    """
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception as exc:  # a last guard: one odd message must not stop the scan
        return BadRecord(file, where, f"cannot parse message: {exc!r}")
    if not msg.keys():
        return BadRecord(file, where, "cannot parse message: no headers")
    date_raw = _header(msg, "date")
    ts = _timestamp(date_raw) if date_raw else None
    if ts is None:
        date_raw, ts = _fallback_time(msg, envelope[0])
    if ts is None:
        said = (
            f"unreadable Date header {_header(msg, 'date')!r}" if msg["date"] else "no Date header"
        )
        kept = (
            f"no date in {envelope[1]} or Received headers"
            if envelope[1]
            else ("no date in Received headers")
        )
        return BadRecord(file, where, f"{said}, and {kept}")
    day = day_of(ts, tz)
    try:
        return _item(msg, date_raw, ts, day, source, prefix)
    except Exception as exc:  # html.parser and payload decoding fail in many ways on junk
        return BadRecord(file, where, f"cannot parse message: {exc!r}", day)


def _item(
    msg: Message, date_raw: str, ts: datetime, day: date, source: str, prefix: str
) -> MemoryItem:
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
        # repaired as the item will be: a lone surrogate must not make the message a bad record
        key = canonical_json(repair_text([date_raw, meta["from"], title, text])).encode()
        message_id = hashlib.sha256(key).hexdigest()[:24]
    return MemoryItem(
        item_id=f"{prefix}:{message_id}",
        source=source,
        ts=ts,
        day=day,
        title=title,
        text=text,
        meta=meta,
    )


def _fallback_time(msg: Message, envelope_date: str) -> tuple[str, datetime | None]:
    """The time of a message without a readable Date header: the envelope's date (the mbox
    `From ` line's `Sat Jan  3 01:05:34 1996`), else the newest `Received:` date."""
    if envelope_date and (ts := _timestamp(envelope_date)) is not None:
        return envelope_date, ts
    received = [
        (ts, value)
        for value in (v.rpartition(";")[2].strip() for v in _headers(msg, "received"))
        if value and (ts := _timestamp(value)) is not None
    ]
    if received:
        ts, value = max(received)
        return value, ts
    return "", None


def _timestamp(value: str) -> datetime | None:
    """The Date header as an aware UTC datetime; a zone-less date is taken as UTC."""
    try:
        ts = parsedate_to_datetime(value)
        # 9999-12-31 23:00 -0500 is past the last instant a datetime holds in UTC
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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
