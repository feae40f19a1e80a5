"""Slack workspace export: the zip Slack hands out, or the folder it unpacks to.

Layout (Slack's "Export your workspace data" help page): `users.json`, `channels.json`
(and `groups.json`, `mpims.json`, `dms.json` in exports that include private data), and one
folder per conversation holding one `YYYY-MM-DD.json` file per day, each a list of messages.
Read with the stdlib (`zipfile`, `json`): the export is plain JSON in a plain zip.

- Unit: one day file, `<channel folder>/<YYYY-MM-DD>.json`. Its stamp is the member's
  CRC-32 and size from the zip's directory (or the file's mtime and size), joined with the
  stamp of `users.json`, so a renamed user re-reads every day (names are in the text).
- Item: one message; id `slack:<channel id>:<ts>` (Slack's `ts` is unique in a channel and
  never changes, also when the message is edited).
- Day: the message's `ts` (Unix seconds, UTC) in the configured timezone; the file name is
  Slack's UTC day and is not used.
- Kept as Slack shows them: the latest text of an edited message (`edited` goes to meta),
  thread replies with `reply_to` naming the parent, user names resolved from users.json in
  the author and in `<@U…>` mentions. Deleted thread parents (`tombstone`) are dropped.
  Options: `include_bots` (default true) keeps bot messages, `include_joins` (default false)
  keeps "has joined/left the channel" messages.
- Bad input: a day file that is not a JSON list, or a message without a readable `ts`, is a
  bad record naming the file and `[index]`; since its time cannot be told it fails no day.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.parsed import (
    Entry,
    WholeUnitSource,
    file_stamp,
    from_epoch,
    load_json,
    read_export,
    title_of,
)

KIND = "slack"
CONVERSATION_LISTS = ("channels.json", "groups.json", "mpims.json", "dms.json")
JOIN_SUBTYPES = frozenset({"channel_join", "channel_leave", "group_join", "group_leave"})
DROPPED_SUBTYPES = frozenset({"tombstone"})  # the stub left where a thread parent was deleted

_DAY_FILE = re.compile(r"^[^/]+/\d{4}-\d{2}-\d{2}\.json$")
_MARKUP = re.compile(r"<([@#!])?([^>|]*)(?:\|([^>]*))?>")


class SlackSource(WholeUnitSource):
    kind = KIND
    option_defaults: ClassVar[dict[str, Any]] = {"include_bots": True, "include_joins": False}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._users: tuple[str, dict[str, str]] | None = None  # (users.json stamp, names)
        self._channels: tuple[str, dict[str, str]] | None = None  # (lists' stamps, ids)
        self._zip_listing: tuple[str, dict[str, str]] | None = None  # (zip stamp, listing)

    # --- the export's files ----------------------------------------------------------

    def _is_zip(self) -> bool:
        return self.path.is_file()

    def _listing(self) -> dict[str, str]:
        """Every member of the export as (relative name, stamp), without reading one."""
        if self._is_zip():
            stamp = file_stamp(self.path)
            if self._zip_listing is None or self._zip_listing[0] != stamp:
                self._zip_listing = (stamp, self._zip_members())
            return self._zip_listing[1]
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no Slack export (zip or folder) for {self.name!r}")
        listing = {
            name: file_stamp(self.path / name)
            for name in (*CONVERSATION_LISTS, "users.json")
            if (self.path / name).is_file()
        }
        for folder in sorted(p for p in self.path.iterdir() if p.is_dir()):
            for file in sorted(folder.glob("*.json")):
                listing[f"{folder.name}/{file.name}"] = file_stamp(file)
        return listing

    def _zip_members(self) -> dict[str, str]:
        try:
            with zipfile.ZipFile(self.path) as archive:
                return {
                    info.filename: f"{info.CRC:08x}:{info.file_size}"
                    for info in archive.infolist()
                    if not info.is_dir()
                }
        except (zipfile.BadZipFile, OSError) as exc:
            raise ConfigError(f"{self.path}: not a readable Slack export zip: {exc}") from None

    def _stamp(self, unit: str) -> str:
        """One unit's stamp without listing a folder export again (a zip's listing is kept)."""
        if self._is_zip():
            listing = self._listing()
            return f"{listing[unit]}|{listing.get('users.json', '-')}" if unit in listing else ""
        users = self.path / "users.json"
        try:
            stamp = file_stamp(self.path / unit)
        except OSError:
            return ""
        return f"{stamp}|{file_stamp(users) if users.is_file() else '-'}"

    def _read(self, member: str) -> bytes:
        if self._is_zip():
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(member)
        return (self.path / member).read_bytes()

    def _path(self, unit: str) -> str:
        return f"{self.path}/{unit}"

    def _units(self) -> Iterator[tuple[str, str]]:
        listing = self._listing()
        users = listing.get("users.json", "-")
        for member, stamp in sorted(listing.items()):
            if _DAY_FILE.match(member):
                yield member, f"{stamp}|{users}"

    # --- names -----------------------------------------------------------------------

    def _user_names(self) -> dict[str, str]:
        """User id → the name Slack shows (display name, else real name, else handle)."""
        stamp = self._member_stamp("users.json")
        if self._users and self._users[0] == stamp:
            return self._users[1]
        names: dict[str, str] = {}
        if stamp:
            for user in _json_list(self._read("users.json")):
                profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
                name = (
                    profile.get("display_name")
                    or profile.get("real_name")
                    or user.get("real_name")
                    or user.get("name")
                )
                if isinstance(user.get("id"), str) and isinstance(name, str):
                    names[user["id"]] = name
        self._users = (stamp, names)
        return names

    def _channel_ids(self) -> dict[str, str]:
        """Folder name → conversation id (named channels by name, DMs by id)."""
        stamps = {name: self._member_stamp(name) for name in CONVERSATION_LISTS}
        stamp = repr(sorted(stamps.items()))
        if self._channels and self._channels[0] == stamp:
            return self._channels[1]
        ids: dict[str, str] = {}
        for name in CONVERSATION_LISTS:
            if stamps[name]:
                for conversation in _json_list(self._read(name)):
                    ident = conversation.get("id")
                    if isinstance(ident, str):
                        ids[str(conversation.get("name") or ident)] = ident
        self._channels = (stamp, ids)
        return ids

    def _member_stamp(self, name: str) -> str:
        """A top-level file's stamp, or "" when the export has none."""
        if self._is_zip():
            return self._listing().get(name, "")
        file = self.path / name
        return file_stamp(file) if file.is_file() else ""

    # --- one day file ----------------------------------------------------------------

    def _entries(self, unit: str) -> Iterator[Entry]:
        path = self._path(unit)
        got = read_export(path, lambda: self._read(unit), list, "not a list of messages")
        if isinstance(got, BadRecord):
            yield Entry("", got)
            return
        messages, bad_bytes = got
        folder = unit.partition("/")[0]
        channel = self._channel_ids().get(folder, folder)
        users = self._user_names()
        for index, message in enumerate(messages):
            where = f"[{index}]"
            if not isinstance(message, dict):
                yield Entry(where, BadRecord(path, where, "a message is not a JSON object"))
                continue
            if not self._wanted(message):
                continue
            ts = from_epoch(message.get("ts")) if isinstance(message.get("ts"), str) else None
            if ts is None:
                said = f"unreadable ts {message['ts']!r}" if "ts" in message else "no ts"
                yield Entry(where, BadRecord(path, where, f"{said} (the message's time)"))
                continue
            yield Entry(where, self._message(message, ts, folder, channel, users, bad_bytes))

    def _wanted(self, message: dict[str, Any]) -> bool:
        subtype = message.get("subtype")
        if subtype in DROPPED_SUBTYPES:
            return False
        if subtype in JOIN_SUBTYPES:
            return bool(self.options["include_joins"])
        if subtype == "bot_message" or "bot_id" in message:
            return bool(self.options["include_bots"])
        return True

    def _message(
        self,
        message: dict[str, Any],
        ts: datetime,
        folder: str,
        channel: str,
        users: dict[str, str],
        bad_bytes: bool,
    ) -> MemoryItem:
        author = _author(message, users)
        text = _text(message, users)
        meta: dict[str, Any] = {"channel": folder, "user": author}
        if isinstance(message.get("subtype"), str):
            meta["subtype"] = message["subtype"]
        thread = message.get("thread_ts")
        if isinstance(thread, str):
            meta["thread_ts"] = thread
            if thread != message["ts"]:
                meta["reply_to"] = f"slack:{channel}:{thread}"
        edited = message.get("edited")
        if isinstance(edited, dict) and (when := from_epoch(edited.get("ts"))):
            meta["edited"] = when.isoformat()
        files = [f.get("name") or f.get("title") for f in _dicts(message.get("files"))]
        if names := [str(f) for f in files if f]:
            meta["files"] = names
        return self._item(
            f"slack:{channel}:{message['ts']}",
            ts,
            f"{author} in #{folder}: {title_of(text, 60)}" if text else f"{author} in #{folder}",
            text,
            meta,
            bad_bytes=bad_bytes,
        )


def _author(message: dict[str, Any], users: dict[str, str]) -> str:
    user = message.get("user")
    if isinstance(user, str) and user in users:
        return users[user]
    profile = message.get("user_profile")
    if isinstance(profile, dict):
        name = profile.get("display_name") or profile.get("real_name")
        if isinstance(name, str) and name:
            return name
    bot = message.get("bot_profile")
    for name in (message.get("username"), bot.get("name") if isinstance(bot, dict) else None):
        if isinstance(name, str) and name:
            return name
    return user if isinstance(user, str) else "unknown"


def _text(message: dict[str, Any], users: dict[str, str]) -> str:
    """The message as Slack shows it: markup resolved, attachments' fallback text added."""
    parts = [message.get("text")]
    parts += [a.get("text") or a.get("fallback") for a in _dicts(message.get("attachments"))]
    text = "\n\n".join(p for p in parts if isinstance(p, str) and p.strip())
    return _resolve(text, users)


def _resolve(text: str, users: dict[str, str]) -> str:
    """`<@U1>` → `@Alice`, `<#C1|general>` → `#general`, `<!here>` → `@here`,
    `<https://x|label>` → `label (https://x)`, then Slack's three HTML escapes."""

    def one(match: re.Match[str]) -> str:
        sigil, target, label = match.groups()
        if sigil == "@":
            return "@" + (label or users.get(target, target))
        if sigil == "#":
            return "#" + (label or target)
        if sigil == "!":
            return "@" + (label or target.partition("^")[0])
        return f"{label} ({target})" if label and label != target else target

    resolved = _MARKUP.sub(one, text)
    return resolved.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _json_list(data: bytes) -> list[dict[str, Any]]:
    """The objects of a JSON list file (users.json, channels.json); [] when it is not one."""
    try:
        value, _ = load_json(data)
    except ValueError:
        return []
    return _dicts(value)


SOURCE = SlackSource
