"""The tokens of the embedded index's full-text search (FTS5 `porter unicode61`), read from
SQLite itself, so that an index elsewhere (PostgreSQL) sees the same words, stems and
positions: a query matches the same items in both, and bm25 counts the same tokens."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

_SCHEMA = """
CREATE VIRTUAL TABLE t USING fts5(a, b, content='', tokenize='porter unicode61');
CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');
"""
_lock = threading.Lock()
_conn: sqlite3.Connection | None = None


def _connection() -> sqlite3.Connection:
    global _conn
    if _conn is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        _conn = conn
    return _conn


def tokenize(pairs: Sequence[tuple[str, str]]) -> list[tuple[list[str], list[str]]]:
    """For each (title, text), the tokens of each in order, as FTS5 stores them."""
    out: list[tuple[list[str], list[str]]] = [([], []) for _ in pairs]
    if not pairs:
        return out
    with _lock:
        conn = _connection()
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT INTO t(rowid, a, b) VALUES (?, ?, ?)",
                [(i + 1, a, b) for i, (a, b) in enumerate(pairs)],
            )
            # offsets run 0.. without gaps within a column: the order is the position
            rows = conn.execute("SELECT doc, col, term FROM v ORDER BY doc, col, offset")
            for doc, col, term in rows:
                out[doc - 1][0 if col == "a" else 1].append(term)
        finally:
            conn.execute("INSERT INTO t(t) VALUES ('delete-all')")
            conn.execute("COMMIT")
    return out


def terms(text: str) -> list[str]:
    """The tokens of one query string (a word or a phrase), stemmed as the index stems."""
    return tokenize([("", text)])[0][1]
