"""Telegram Desktop export: the `result.json` of "Export chat history" in machine-readable
JSON, for all chats (`chats.list[]`, plus `left_chats.list[]`) or for one chat (the top
level is the chat itself, with its `messages[]`).

- Unit: the file (a folder is searched for `result.json` files, each a unit); its stamp is
  mtime and size. Read with the stdlib `json` in one piece: a result.json of N MB needs
  some 10 times that of memory while it is read; a full export is rarely past a few hundred MB.
- Item: one message; id `telegram:<chat id>:<message id>` (both are Telegram's own ids).
- Day: `date_unixtime` (Unix seconds, UTC; exports since 2021 write it) in the configured
  timezone; without it, `date`, which Telegram writes as the exporting computer's wall-clock
  time without an offset, read as wall-clock time in the configured timezone.
- Text: a string, or a list of entities (strings and `{"type", "text"}` objects) joined in
  order; a link entity with an `href` other than its text keeps the address in brackets.
  Media without text becomes `[photo]`, `[sticker 😀]`, `[file name.pdf]`. An edited
  message is exported in its last form (`edited` goes to meta); deleted messages are not
  in an export at all. Service messages (joins, pins, calls) are dropped unless the option
  `include_service` is true.
- Bad input: a message without a readable date, or without an id, is a bad record naming
  the file and its place (`result.json: chats.list[3].messages[1042]: no date`); with no
  date it fails no day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import day_of
from softcopy.memory.sources.parsed import (
    Entry,
    WholeUnitSource,
    file_stamp,
    from_epoch,
    read_export,
    title_of,
)

KIND = "telegram"
FILE_NAME = "result.json"
MEDIA_FIELDS = ("photo", "file", "media_type", "sticker_emoji", "poll", "location_information")


class TelegramSource(WholeUnitSource):
    kind = KIND
    option_defaults: ClassVar[dict[str, Any]] = {"include_service": False}

    def _files(self) -> list[tuple[str, Path]]:
        if self.path.is_file():
            return [(self.path.name, self.path)]
        if self.path.is_dir():
            found = sorted(p for p in self.path.rglob(FILE_NAME) if p.is_file())
            return [(p.relative_to(self.path).as_posix(), p) for p in found]
        raise ConfigError(f"{self.path}: no such Telegram export for source {self.name!r}")

    def _units(self) -> Iterator[tuple[str, str]]:
        for unit, file in self._files():
            yield unit, file_stamp(file)

    def _stamp(self, unit: str) -> str:
        file = self._file(unit)
        return file_stamp(file) if file.is_file() else ""

    def _file(self, unit: str) -> Path:
        return self.path if self.path.is_file() else self.path / unit

    def _path(self, unit: str) -> str:
        return str(self._file(unit))

    def _entries(self, unit: str) -> Iterator[Entry]:
        path = self._path(unit)
        got = read_export(
            path, self._file(unit).read_bytes, dict, "not a Telegram export (no JSON object)"
        )
        if isinstance(got, BadRecord):
            yield Entry("", got)
            return
        export, bad_bytes = got
        for where, chat in _chats(export):
            messages = chat.get("messages")
            if not isinstance(messages, list):
                yield Entry(where, BadRecord(path, where, "a chat without a messages list"))
                continue
            for index, message in enumerate(messages):
                at = f"{where}.messages[{index}]" if where else f"messages[{index}]"
                got = self._message(path, at, chat, message, bad_bytes)
                if got is not None:
                    yield Entry(at, got)

    def _message(
        self, path: str, where: str, chat: dict[str, Any], message: Any, bad_bytes: bool
    ) -> MemoryItem | BadRecord | None:
        if not isinstance(message, dict):
            return BadRecord(path, where, "a message is not a JSON object")
        ts = self._time(message)
        if ts is None:
            said = f"unreadable date {message['date']!r}" if "date" in message else "no date"
            return BadRecord(path, where, said)
        day = day_of(ts, self.tz)
        ident = message.get("id")
        if isinstance(ident, bool) or not isinstance(ident, int | str):
            return BadRecord(path, where, "no message id", day)
        service = message.get("type") == "service"
        if service and not self.options["include_service"]:
            return None  # left out by option: neither an item nor a bad record
        chat_name = str(chat.get("name") or chat.get("id") or "Saved Messages")
        author = str(message.get("from") or message.get("actor") or "")
        text = _text(message.get("text"))
        if not text.strip():
            text = _media(message) or (_action(message) if service else "")
        meta: dict[str, Any] = {"chat": chat_name, "from": author}
        if service:
            meta["service"] = str(message.get("action", ""))
        if (edited := from_epoch(message.get("edited_unixtime"))) is not None:
            meta["edited"] = edited.isoformat()
        if (reply := message.get("reply_to_message_id")) is not None:
            meta["reply_to"] = f"telegram:{chat.get('id')}:{reply}"
        if isinstance(message.get("forwarded_from"), str):
            meta["forwarded_from"] = message["forwarded_from"]
        title = f"{author} in {chat_name}" if author else chat_name
        return self._item(
            f"telegram:{chat.get('id', chat_name)}:{ident}",
            ts,
            f"{title}: {title_of(text, 60)}" if text.strip() else title,
            text,
            meta,
            bad_bytes=bad_bytes,
        )

    def _time(self, message: dict[str, Any]) -> datetime | None:
        """`date_unixtime` (UTC), else `date` as wall-clock time in the configured timezone."""
        if (ts := from_epoch(message.get("date_unixtime"))) is not None:
            return ts
        value = message.get("date")
        if not isinstance(value, str):
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        try:  # 0001-01-01T00:00 east of UTC is before the first instant a datetime holds
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)).astimezone(UTC)
        except OverflowError:
            return None


def _chats(export: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, chat) of every chat: `chats.list[i]`, `left_chats.list[i]`, or the one chat."""
    if isinstance(export.get("messages"), list):
        yield "", export
        return
    for key in ("chats", "left_chats"):
        group = export.get(key)
        chats = group.get("list") if isinstance(group, dict) else None
        for index, chat in enumerate(chats if isinstance(chats, list) else []):
            if isinstance(chat, dict):
                yield f"{key}.list[{index}]", chat


def _text(value: Any) -> str:
    """`text` as a string, or its list of entities (strings and {type, text}) joined."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    out = []
    for part in value:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            href = part.get("href")
            if isinstance(href, str) and href and href != part["text"]:
                out.append(f"{part['text']} ({href})")
            else:
                out.append(part["text"])
    return "".join(out)


def _media(message: dict[str, Any]) -> str:
    """A placeholder for a message that is only media: `[photo]`, `[file report.pdf]`."""
    if "photo" in message:
        return "[photo]"
    if "sticker_emoji" in message:
        return f"[sticker {message['sticker_emoji']}]"
    if isinstance(message.get("file"), str):
        kind = str(message.get("media_type") or "file").replace("_", " ")
        name = message.get("file_name") or Path(message["file"]).name
        return f"[{kind} {name}]"
    if isinstance(message.get("poll"), dict):
        return f"[poll {message['poll'].get('question', '')}]"
    return ""


def _action(message: dict[str, Any]) -> str:
    actor = message.get("actor") or ""
    return f"[{actor} {message.get('action', 'service')}]".replace("[ ", "[")


SOURCE = TelegramSource
