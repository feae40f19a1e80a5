"""ChatGPT data export: `conversations.json` (Settings → Data controls → Export data).

The file is a list of conversations; each holds its messages in a `mapping` of nodes
`{id, message, parent, children}` (a tree: regenerated answers and edited prompts are
sibling branches, all of which the export keeps). A message is
`{id, author: {role}, create_time, content: {content_type, parts | text}, metadata}`.

- Unit: the file (the path is the file, or the unpacked export folder holding it); its
  stamp is mtime and size. Read with the stdlib `json` in one piece (some 10 times the file's
  size in memory while it is read).
- Item: one message with text, every branch of the tree; id
  `chatgpt:<conversation id>:<message id>`. The root node, hidden system messages and
  messages without text are no items.
- Day: the message's `create_time` (Unix seconds, UTC) in the configured timezone; a
  message whose `create_time` is null takes its conversation's `create_time`.
- Text: the string parts joined by blank lines, or `content.text` (code, tool output);
  parts that are not text (image, audio and file pointers) are skipped and counted in
  meta `skipped_parts`.
- Bad input: a conversation that is no object or has no mapping, or a message with no
  time of its own or of its conversation, is a bad record naming the file and
  `[conversation index].mapping.<node id>`; with no time it fails no day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.parsed import (
    Entry,
    WholeUnitSource,
    file_stamp,
    from_epoch,
    read_export,
)

KIND = "chatgpt"
FILE_NAME = "conversations.json"


class ChatGptSource(WholeUnitSource):
    kind = KIND

    def _file(self) -> Path:
        if self.path.is_dir():
            return self.path / FILE_NAME
        return self.path

    def _units(self) -> Iterator[tuple[str, str]]:
        file = self._file()
        if not file.is_file():
            raise ConfigError(f"{file}: no ChatGPT conversations.json for source {self.name!r}")
        yield file.name, file_stamp(file)

    def _stamp(self, unit: str) -> str:
        file = self._file()
        return file_stamp(file) if file.is_file() else ""

    def _path(self, unit: str) -> str:
        return str(self._file())

    def _entries(self, unit: str) -> Iterator[Entry]:
        path = self._path(unit)
        got = read_export(path, self._file().read_bytes, list, "not a list of conversations")
        if isinstance(got, BadRecord):
            yield Entry("", got)
            return
        export, bad_bytes = got
        for index, conversation in enumerate(export):
            where = f"[{index}]"
            mapping = conversation.get("mapping") if isinstance(conversation, dict) else None
            if not isinstance(mapping, dict):
                yield Entry(where, BadRecord(path, where, "a conversation without a mapping"))
                continue
            for node_id, node in mapping.items():
                message = node.get("message") if isinstance(node, dict) else None
                if isinstance(message, dict):
                    at = f"{where}.mapping.{node_id}"
                    got = self._message(path, at, conversation, message, bad_bytes)
                    if got is not None:
                        yield Entry(at, got)

    def _message(
        self,
        path: str,
        where: str,
        conversation: dict[str, Any],
        message: dict[str, Any],
        bad_bytes: bool,
    ) -> MemoryItem | BadRecord | None:
        metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
        if metadata.get("is_visually_hidden_from_conversation"):
            return None
        text, skipped = _content(message.get("content"))
        if not text.strip():
            return None
        ts: datetime | None = from_epoch(message.get("create_time"))
        if ts is None:
            ts = from_epoch(conversation.get("create_time"))
        if ts is None:
            return BadRecord(path, where, "no create_time, and none on its conversation")
        author = message.get("author") if isinstance(message.get("author"), dict) else {}
        role = str(author.get("role") or "unknown")
        title = str(conversation.get("title") or "Untitled")
        conversation_id = str(conversation.get("conversation_id") or conversation.get("id") or "")
        if not conversation_id:  # an export without ids: the conversation's own time names it
            conversation_id = f"t{conversation.get('create_time')}"
        meta: dict[str, Any] = {"conversation": title, "role": role}
        if isinstance(metadata.get("model_slug"), str):
            meta["model"] = metadata["model_slug"]
        if skipped:
            meta["skipped_parts"] = skipped
        message_id = str(message.get("id") or where.rpartition(".")[2])
        return self._item(
            f"chatgpt:{conversation_id}:{message_id}",
            ts,
            f"{title} ({role})",
            text,
            meta,
            bad_bytes=bad_bytes,
        )


def _content(content: Any) -> tuple[str, int]:
    """The text of a message's content, and how many parts were not text."""
    if not isinstance(content, dict):
        return "", 0
    parts = content.get("parts")
    if isinstance(parts, list):
        texts = [p for p in parts if isinstance(p, str)]
        return "\n\n".join(t for t in texts if t.strip()), len(parts) - len(texts)
    text = content.get("text")
    return (text, 0) if isinstance(text, str) else ("", 0)


SOURCE = ChatGptSource
