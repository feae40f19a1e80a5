"""The memory item and the digests that chain the stages together (DESIGN.md §3)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept."""
    return _CANONICAL.encode(value)


def content_hash(title: str, text: str, meta: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json([title, text, meta]).encode()).hexdigest()


def digest(pairs: Iterable[tuple[str, str]]) -> str:
    """Digest of a set of items: a hash over their sorted (item_id, content_hash) pairs."""
    h = hashlib.sha256()
    for item_id, chash in sorted(pairs):
        h.update(f"{item_id}\0{chash}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class MemoryItem:
    item_id: str
    source: str
    ts: datetime  # aware, UTC
    day: date  # calendar day in the configured timezone
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text, self.meta)

    def to_record(self) -> dict[str, Any]:
        """The exported JSON form; `from_record` reads it back."""
        return {
            "item_id": self.item_id,
            "source": self.source,
            "ts": self.ts.isoformat(),
            "day": self.day.isoformat(),
            "title": self.title,
            "text": self.text,
            "meta": self.meta,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MemoryItem:
        return cls(
            item_id=record["item_id"],
            source=record["source"],
            ts=datetime.fromisoformat(record["ts"]),
            day=date.fromisoformat(record["day"]),
            title=record["title"],
            text=record["text"],
            meta=record["meta"],
        )
