"""The memory item and the digests that chain the stages together (DESIGN.md §3).

Text policy, the same for every source kind: whatever a source read, an item's id, title,
text and meta are always valid Unicode that encodes as UTF-8. A lone surrogate (what
JavaScript writes when it cuts an emoji in half, `"\\ud800"` in JSON) or a NUL (`"\\u0000"`,
which PostgreSQL cannot store) becomes U+FFFD here,
in `canonical`, the one place every item passes through, and the item is marked `repaired`;
undecodable bytes are decoded with U+FFFD by each source, which marks the item the same
way. A repaired item still indexes: its content hash is computed on the repaired text, so
it is stable, and the source reports a warning naming the file and line (a `repaired`
source problem), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# What no database can store as text: lone surrogates (not encodable as UTF-8) and NUL
# (PostgreSQL refuses U+0000 in text and in JSON).
_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_NUL_IN_JSON = "\\u0000"  # how canonical_json writes a NUL
REPLACEMENT = "\ufffd"


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept."""
    return _CANONICAL.encode(value)


class Canonical(NamedTuple):
    """An item's text as stored: repaired where it could not be encoded, and its hash."""

    title: str
    text: str
    meta: dict[str, Any]
    content_hash: str
    repaired: bool


def canonical(title: str, text: str, meta: dict[str, Any]) -> Canonical:
    """Title, text and meta with lone surrogates and NULs replaced by U+FFFD, and their
    content hash.

    The common case costs one encode and one search: the repair runs only when encoding
    fails or the JSON holds an escaped NUL.
    """
    written = canonical_json([title, text, meta])
    try:
        encoded = written.encode()
    except UnicodeEncodeError:
        encoded = None
    if encoded is None or _NUL_IN_JSON in written:
        fixed = repair_text(title), repair_text(text), repair_text(meta)
        if encoded is None or fixed != (title, text, meta):  # not a literal backslash-u0000
            title, text, meta = fixed
            encoded = canonical_json([title, text, meta]).encode()
            return Canonical(title, text, meta, hashlib.sha256(encoded).hexdigest(), True)
    assert encoded is not None
    return Canonical(title, text, meta, hashlib.sha256(encoded).hexdigest(), False)


def content_hash(title: str, text: str, meta: dict[str, Any]) -> str:
    return canonical(title, text, meta).content_hash


def repair_text(value: Any) -> Any:
    """A string, or JSON value, with every lone surrogate and NUL (in keys too) replaced by
    U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {repair_text(k): repair_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repair_text(v) for v in value]
    return value


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
    repaired: bool = field(default=False, compare=False)  # text holds U+FFFD for bad input
    content_hash: str = field(init=False, compare=False, repr=False, default="")

    def __post_init__(self) -> None:
        # Repaired once and hashed once: every stage reads the hash, some more than once.
        fixed = canonical(self.title, self.text, self.meta)
        item_id = _SURROGATE.sub(REPLACEMENT, self.item_id)
        if fixed.repaired or item_id != self.item_id:
            object.__setattr__(self, "item_id", item_id)
            object.__setattr__(self, "title", fixed.title)
            object.__setattr__(self, "text", fixed.text)
            object.__setattr__(self, "meta", fixed.meta)
            object.__setattr__(self, "repaired", True)
        object.__setattr__(self, "content_hash", fixed.content_hash)

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
