"""The embedding cache: one vector per (model, content hash), so unchanged items are never
embedded twice, whatever day or source they appear in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlmodel import Session

from softcopy.db import dialect_insert
from softcopy.memory.tables import EmbeddingCacheEntry as Entry

BATCH = 500


@dataclass(frozen=True)
class CacheStats:
    model: str
    entries: int
    bytes: int
    last_used: datetime | None


def lookup(
    session: Session, *, model: str, hashes: list[str], now: datetime, touch: bool = True
) -> dict[str, np.ndarray]:
    """Cached vectors for those content hashes; marks them used (unless `touch` is False:
    a job's step stores the use with its other writes, `row`/`store_rows`)."""
    found: dict[str, np.ndarray] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        rows = session.execute(
            select(Entry.content_hash, Entry.vector).where(
                Entry.model == model, Entry.content_hash.in_(chunk)
            )
        ).all()
        for chash, blob in rows:
            found[chash] = np.frombuffer(blob, dtype=np.float32)
        if rows and touch:
            session.execute(
                update(Entry)
                .where(Entry.model == model, Entry.content_hash.in_([r[0] for r in rows]))
                .values(used_at=now)
            )
    return found


def store(session: Session, *, model: str, vectors: dict[str, np.ndarray], now: datetime) -> None:
    rows = [
        {
            "model": model,
            "content_hash": chash,
            "dim": int(vector.shape[0]),
            "vector": np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
            "used_at": now,
        }
        for chash, vector in vectors.items()
    ]
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Entry.__table__), rows[start : start + BATCH])


def row(model: str, content_hash: str, vector: np.ndarray, now: datetime) -> dict[str, object]:
    return {
        "model": model,
        "content_hash": content_hash,
        "dim": int(vector.shape[0]),
        "vector": np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
        "used_at": now,
    }


def store_rows(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert `row`s, or mark the vector used where (model, hash) is there already (another
    step may have stored it meanwhile: the vector is the same)."""
    table = Entry.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), BATCH):
        base = dialect_insert(session.get_bind(), table)
        statement = base.on_conflict_do_update(
            index_elements=["model", "content_hash"],
            set_={"used_at": base.excluded.used_at},
        )
        session.execute(statement, rows[start : start + BATCH])


def stats(session: Session) -> list[CacheStats]:
    rows = session.execute(
        select(
            Entry.model, func.count(), func.sum(func.length(Entry.vector)), func.max(Entry.used_at)
        ).group_by(Entry.model)
    ).all()
    return [
        CacheStats(model=m, entries=n, bytes=int(b or 0), last_used=last) for m, n, b, last in rows
    ]


def prune(session: Session, *, unused_since: datetime) -> int:
    """Drop vectors not used since `unused_since`; returns how many."""
    result = session.execute(delete(Entry).where(Entry.used_at < unused_since))
    return int(result.rowcount or 0)


def clear(session: Session, *, model: str | None = None) -> int:
    query = delete(Entry) if model is None else delete(Entry).where(Entry.model == model)
    return int(session.execute(query).rowcount or 0)
