"""The published search index: `<home>/index.db`, SQLite with FTS5 and stored vectors.

This is the one SQLite-only store (DESIGN.md): a per-home file that search reads. Publish
replaces a (source, day)'s rows in one transaction; search fuses full-text rank and
vector similarity by reciprocal rank.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from softcopy.db import writable
from softcopy.errors import ReadOnlyStorage, StorageFault
from softcopy.faults import sqlite_fault_reason
from softcopy.memory.items import MemoryItem, digest

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    day TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE(source, day, item_id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
    title, text, content='docs', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS docs_ai AFTER INSERT ON docs BEGIN
    INSERT INTO docs_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_ad AFTER DELETE ON docs BEGIN
    INSERT INTO docs_fts(docs_fts, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
END;
"""
_lock = threading.RLock()  # one connection per process, shared by its threads
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al.)
CANDIDATES = 100
FTS_TERM = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    source: str
    day: date
    item_id: str
    title: str
    snippet: str
    score: float


_connections: dict[tuple[int, Path, bool], sqlite3.Connection] = {}


@contextmanager
def connect(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """This process's connection to the index at `path` (opened, and the schema made, once:
    closing the last connection of a WAL database checkpoints it, which is slow per day).

    A home that cannot be written is opened read-only, without switching the journal mode
    or making the schema, so search and verify work there; a write is a ReadOnlyStorage
    fault. Machine faults (a full disk, a locked file) become StorageFaults."""
    read_only = not writable(path)
    if write and read_only:
        raise ReadOnlyStorage(path.parent, f"write the search index {path}", label="home")
    key = (os.getpid(), path.resolve(), read_only)
    try:
        conn = _connections.get(key)
        if conn is None:
            conn = _open_read_only(path) if read_only else _open(path)
            _connections[key] = conn
        with _lock:
            yield conn
    except sqlite3.Error as exc:
        reason = sqlite_fault_reason(exc)
        if reason is None:
            raise  # a bug (a statement SQLite rejects), not the machine
        raise StorageFault(path, reason, what=f"search index {path}") from exc


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fault = StorageFault.from_os_error(exc, path.parent)
        if fault is None:
            raise
        raise fault from exc
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Read the index without writing beside it: `mode=ro` when its -shm file exists,
    `immutable=1` when no -wal file holds pages not yet in the main file; a home with no
    index yet reads as an empty one."""
    if not path.exists():
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(SCHEMA)
        return conn
    wal = path.with_name(path.name + "-wal")
    if path.with_name(path.name + "-shm").exists():
        flags = "mode=ro"
    elif not wal.exists() or wal.stat().st_size == 0:
        flags = "immutable=1"
    else:
        raise StorageFault(
            path,
            f"cannot be read: {wal.name} holds changes and the folder is read-only",
            what=f"search index {path}",
        )
    uri = f"{path.resolve().as_uri()}?{flags}"
    return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)


def close_all() -> None:
    """Close this process's index connections (tests, and before a home is deleted)."""
    for key in [k for k in _connections if k[0] == os.getpid()]:
        _connections.pop(key).close()


def replace_day(
    path: Path, *, source: str, day: date, items: list[MemoryItem], vectors: np.ndarray
) -> None:
    """Make the index hold exactly `items` for (source, day), atomically."""
    rows = [
        (
            source,
            day.isoformat(),
            item.item_id,
            item.ts.isoformat(),
            item.title,
            item.text,
            item.content_hash,
            vectors[i].astype(np.float32).tobytes(),
        )
        for i, item in enumerate(items)
    ]
    with connect(path, write=True) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM docs WHERE source = ? AND day = ?", (source, day.isoformat()))
            conn.executemany(
                "INSERT INTO docs(source, day, item_id, ts, title, text, content_hash, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a full disk does): a second ROLLBACK
            # would fail and hide the first error
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


def day_digests(path: Path, source: str | None = None) -> dict[tuple[str, date], tuple[int, str]]:
    """(source, day) -> (rows, digest of their (item_id, content_hash)): what verify checks."""
    pairs: dict[tuple[str, date], list[tuple[str, str]]] = {}
    query = "SELECT source, day, item_id, content_hash FROM docs"
    args: tuple[str, ...] = ()
    if source:
        query += " WHERE source = ?"
        args = (source,)
    with connect(path) as conn:
        for src, day, item_id, chash in conn.execute(query, args):
            pairs.setdefault((src, date.fromisoformat(day)), []).append((item_id, chash))
    return {key: (len(p), digest(p)) for key, p in pairs.items()}


def count(path: Path) -> int:
    with connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM docs").fetchone()[0])


def search(
    path: Path,
    *,
    query: str,
    query_vector: np.ndarray,
    k: int = 10,
    sources: Iterable[str] = (),
    since: date | None = None,
) -> list[Hit]:
    """Hybrid search: FTS5 bm25 rank and cosine similarity, fused by reciprocal rank."""
    where, args = _filters(list(sources), since)
    with connect(path) as conn:
        text_ranked = _fts_ranked(conn, query, where, args)
        vector_ranked = _vector_ranked(conn, query_vector, where, args)
        scores: dict[int, float] = {}
        for ranking in (text_ranked, vector_ranked):
            for rank, doc_id in enumerate(ranking):
                scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [_hit(conn, doc_id, score, query) for doc_id, score in best]


def _filters(sources: list[str], since: date | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if sources:
        clauses.append(f"docs.source IN ({','.join('?' * len(sources))})")
        args += sources
    if since:
        clauses.append("docs.day >= ?")
        args.append(since.isoformat())
    return (" AND ".join(clauses) or "1"), args


def _fts_query(query: str) -> str | None:
    terms = FTS_TERM.findall(query)
    return " OR ".join(f'"{t}"' for t in terms) or None


def _fts_ranked(conn: sqlite3.Connection, query: str, where: str, args: list[str]) -> list[int]:
    fts = _fts_query(query)
    if fts is None:
        return []
    rows = conn.execute(
        "SELECT docs.id FROM docs_fts JOIN docs ON docs.id = docs_fts.rowid"
        f" WHERE docs_fts MATCH ? AND {where} ORDER BY bm25(docs_fts, 2.0, 1.0) LIMIT ?",
        [fts, *args, CANDIDATES],
    )
    return [r[0] for r in rows]


def _vector_ranked(
    conn: sqlite3.Connection, query_vector: np.ndarray, where: str, args: list[str]
) -> list[int]:
    if not np.any(query_vector):
        return []
    ids, blobs = [], []
    for doc_id, blob in conn.execute(f"SELECT id, vector FROM docs WHERE {where}", args):
        ids.append(doc_id)
        blobs.append(blob)
    if not ids:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
    if matrix.shape[1] != query_vector.shape[0]:
        return []  # published with another embedder; full-text still answers
    similarity = matrix @ query_vector.astype(np.float32)
    top = np.argsort(-similarity, kind="stable")[:CANDIDATES]
    return [ids[i] for i in top if similarity[i] > 0]


def _hit(conn: sqlite3.Connection, doc_id: int, score: float, query: str) -> Hit:
    source, day, item_id, title, text = conn.execute(
        "SELECT source, day, item_id, title, text FROM docs WHERE id = ?", (doc_id,)
    ).fetchone()
    return Hit(
        source=source,
        day=date.fromisoformat(day),
        item_id=item_id,
        title=title,
        snippet=_snippet(conn, doc_id, query) or text[:160].replace("\n", " "),
        score=score,
    )


def _snippet(conn: sqlite3.Connection, doc_id: int, query: str) -> str | None:
    fts = _fts_query(query)
    if fts is None:
        return None
    row = conn.execute(
        "SELECT snippet(docs_fts, 1, '[', ']', '…', 16) FROM docs_fts"
        " WHERE docs_fts MATCH ? AND rowid = ?",
        (fts, doc_id),
    ).fetchone()
    return row[0].replace("\n", " ") if row and "[" in row[0] else None
