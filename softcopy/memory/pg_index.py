"""The team index in PostgreSQL (`index_url = "postgresql://…"`): the rows of the embedded
index (softcopy.memory.index) in one table, full text in a tsvector column under a GIN
index, each item's vector beside it, and the same hybrid ranking over them.

Scores are comparable with the embedded index by construction, so the floors calibrated
on the labelled set (bench/search_quality.py) hold here too: the tsvector holds the tokens
FTS5 stores (softcopy.memory.tokens: the same stems and positions, title and text a
position apart so no phrase spans them); a query becomes the tsquery of FTS5's MATCH
expression, so it matches the same items; the lexical rank is FTS5's own bm25 over them
(title weighted 2, IDF and average length over the whole index); the vector side and the
reciprocal-rank fusion are the embedded index's functions. Limits of tsvector: at most
256 positions of a word and positions up to 16,383 count, and only an item's first
TEXT_CHARS characters are searchable as text.

`search_days` holds each published (source, day)'s totals (bm25's row count and average
length without a scan) and a generation that changes with every publish, which says when
the vectors held in memory are stale.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from softcopy.db import display_url, parse_url
from softcopy.errors import ConfigError, DatabaseFault
from softcopy.faults import database_fault_reason
from softcopy.memory.index import (
    CANDIDATES,
    Hit,
    Score,
    _Vectors,
    fuse,
    nearest,
    rarer,
)
from softcopy.memory.items import MemoryItem, digest
from softcopy.memory.pg_text import (
    TEXT_CHARS,
    Lexical,
    Phrase,
    snippet,
    tsvector,
    weighted_counts,
)
from softcopy.memory.query import Query, parse
from softcopy.memory.tokens import terms, tokenize

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS search_docs(
        id BIGSERIAL PRIMARY KEY,
        source TEXT NOT NULL,
        day DATE NOT NULL,
        item_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        vector BYTEA NOT NULL,
        tokens INTEGER NOT NULL,
        counts JSONB NOT NULL,
        tsv TSVECTOR NOT NULL,
        UNIQUE(source, day, item_id)
    )""",
    "CREATE INDEX IF NOT EXISTS search_docs_tsv ON search_docs USING GIN(tsv)",
    """CREATE TABLE IF NOT EXISTS search_days(
        source TEXT NOT NULL,
        day DATE NOT NULL,
        items INTEGER NOT NULL,
        tokens BIGINT NOT NULL,
        generation UUID NOT NULL,
        PRIMARY KEY(source, day)
    )""",
)
SCHEMA_LOCK = 7412  # advisory lock: two first uses must not both create the tables
K1, B = 1.2, 0.75  # FTS5's bm25 constants
CONNECT_TIMEOUT_S = 10


class IndexUnavailable(DatabaseFault):
    """The PostgreSQL index cannot be reached or written (a DatabaseFault: exit 3, 503)."""

    def __init__(self, database: str, reason: str) -> None:
        super().__init__(database, reason)
        self.what = f"search index {database}"
        Exception.__init__(self, f"{self.what}: {reason}")

    def __reduce__(self) -> Any:  # crosses process boundaries with its facts
        return (self.__class__, (self.database, self.reason))


_lock = threading.RLock()  # one connection per process and URL, shared by its threads
_connections: dict[tuple[int, str], Any] = {}
_vectors: dict[tuple[int, str], _Vectors] = {}


def close_all() -> None:
    """Close this process's index connections and forget the vectors held (tests)."""
    with _lock:
        _vectors.clear()
        for key in [k for k in _connections if k[0] == os.getpid()]:
            _connections.pop(key).close()


@dataclass(frozen=True)
class _Stats:
    rows: int
    tokens: int
    version: tuple[int, str]


class PgIndex:
    """The search index in the PostgreSQL database at `url` (softcopy.memory.index's
    SearchIndex)."""

    def __init__(self, url: str) -> None:
        parsed = parse_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(f"index {display_url(parsed)}: the index URL must be postgresql://")
        self.url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.where = display_url(parsed)

    def __repr__(self) -> str:
        return f"PgIndex({self.where!r})"

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """This process's connection (opened, and the schema made, once); a fault of the
        server or the network becomes IndexUnavailable, naming the index."""
        import psycopg  # the postgres extra: only a home with index_url needs it

        with _lock:
            key = (os.getpid(), self.url)
            conn = _connections.get(key)
            try:
                if conn is None or conn.closed or conn.broken:
                    _connections.pop(key, None)
                    conn = self._open(psycopg)
                    _connections[key] = conn
                yield conn
            except psycopg.Error as exc:
                reason = database_fault_reason(exc, bool(conn is not None and conn.broken))
                if conn is not None and (conn.closed or conn.broken):
                    _connections.pop(key, None)
                if reason is None:
                    raise  # a bug (a statement PostgreSQL rejects), not the machine
                raise IndexUnavailable(self.where, reason) from exc

    def _open(self, psycopg: Any) -> Any:
        extra = {} if "connect_timeout" in self.url else {"connect_timeout": CONNECT_TIMEOUT_S}
        conn = psycopg.connect(self.url, autocommit=True, **extra)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in SCHEMA:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def check(self) -> None:
        """Connect (and make the tables): IndexUnavailable when the server does not answer."""
        with self._connect() as conn:
            conn.execute("SELECT 1 FROM search_days LIMIT 1").fetchall()

    def replace_day(
        self, *, source: str, day: date, items: list[MemoryItem], vectors: np.ndarray
    ) -> None:
        """Make the index hold exactly `items` for (source, day), in one transaction."""
        tokens = tokenize([(item.title, item.text[:TEXT_CHARS]) for item in items])
        rows = []
        for i, (item, (title, text)) in enumerate(zip(items, tokens, strict=True)):
            rows.append(
                (
                    source,
                    day,
                    item.item_id,
                    item.ts.isoformat(),
                    item.title,
                    item.text,
                    item.content_hash,
                    vectors[i].astype(np.float32).tobytes(),
                    len(title) + len(text),
                    tsvector(title, text),
                    json.dumps(weighted_counts(title, text)),
                )
            )
        with self._connect() as conn, conn.transaction():
            # a stale writer of the same day waits here instead of colliding on its rows
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"softcopy-index/{source}/{day.isoformat()}",),
            )
            conn.execute("DELETE FROM search_docs WHERE source = %s AND day = %s", (source, day))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO search_docs(source, day, item_id, ts, title, text, content_hash,"
                    " vector, tokens, tsv, counts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " %s::tsvector, %s::jsonb)",
                    rows,
                )
            if rows:
                conn.execute(
                    "INSERT INTO search_days(source, day, items, tokens, generation)"
                    " VALUES (%s, %s, %s, %s, gen_random_uuid())"
                    " ON CONFLICT (source, day) DO UPDATE SET items = excluded.items,"
                    " tokens = excluded.tokens, generation = excluded.generation",
                    (source, day, len(rows), sum(r[8] for r in rows)),
                )
            else:
                conn.execute(
                    "DELETE FROM search_days WHERE source = %s AND day = %s", (source, day)
                )

    def day_digests(self, source: str | None = None) -> dict[tuple[str, date], tuple[int, str]]:
        """(source, day) -> (rows, digest of their (item_id, content_hash)): what verify checks."""
        pairs: dict[tuple[str, date], list[tuple[str, str]]] = {}
        query = "SELECT source, day, item_id, content_hash FROM search_docs"
        with self._connect() as conn:
            rows = conn.execute(
                query + (" WHERE source = %s" if source else ""), (source,) if source else ()
            )
            for src, day, item_id, chash in rows:
                pairs.setdefault((src, day), []).append((item_id, chash))
        return {key: (len(p), digest(p)) for key, p in pairs.items()}

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM search_docs").fetchone()[0])

    def search(
        self,
        *,
        query: str | Query,
        query_vector: np.ndarray,
        k: int = 10,
        sources: Iterable[str] = (),
        since: date | None = None,
        until: date | None = None,
        floor: float = 0.0,
        parts: tuple[str, ...] = ("text", "vector"),
    ) -> list[Hit]:
        """Hybrid search, as softcopy.memory.index.search ranks it."""
        parsed = parse(query) if isinstance(query, str) else query
        names = list(dict.fromkeys([*sources, *parsed.sources]))
        since = max(filter(None, (since, parsed.since)), default=None)
        until = min(filter(None, (until, parsed.until)), default=None)
        with self._connect() as conn:
            stats = _stats(conn)
            lexical: dict[int, float] = {}
            if "text" in parts:
                lexical = _bm25_ranked(
                    conn, Lexical.of(_rarer(conn, parsed, stats)), stats, names, since, until
                )
            vector: dict[int, float] = {}
            if "vector" in parts and np.any(query_vector):
                whole = Lexical.of(parsed)
                required, excluded = whole.required_tsquery(), whole.excluded_tsquery()
                impossible = any(not p.tokens for p in whole.required)
                vector = nearest(
                    self._held(conn, stats),
                    query_vector,
                    sources=names,
                    since=since,
                    until=until,
                    floor=floor,
                    required=(
                        (lambda: np.zeros(0, dtype=np.int64))
                        if impossible
                        else (lambda: _matching(conn, required))
                        if required
                        else None
                    ),
                    excluded=(lambda: _matching(conn, excluded)) if excluded else None,
                )
            best = fuse(lexical, vector, k)
            return _hits(conn, best, parsed)

    def _held(self, conn: Any, stats: _Stats) -> _Vectors:
        """The index's vectors, read again only after a publish changed a day."""
        key = (os.getpid(), self.url)
        held = _vectors.get(key)
        if held is not None and held.version == stats.version:
            return held
        ids, blobs, sources, days = [], [], [], []
        for doc_id, blob, source, day in conn.execute(
            "SELECT id, vector, source, day FROM search_docs ORDER BY id",
            binary=True,  # the vectors' bytes as they are, not hex to decode
        ):
            ids.append(doc_id)
            blobs.append(bytes(blob))
            sources.append(source)
            days.append(day.toordinal())
        dim = len(blobs[0]) // 4 if blobs else 0
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32)
        if blobs and len(matrix) != dim * len(ids):
            dim = 0  # vectors of several widths: no embedder can compare with all of them
            matrix = np.zeros((len(ids), 0), dtype=np.float32)
        held = _Vectors(
            version=stats.version,
            ids=np.asarray(ids, dtype=np.int64),
            matrix=matrix.reshape(len(ids), dim),
            sources=np.asarray(sources, dtype=object),
            days=np.asarray(days, dtype=np.int32),
        )
        _vectors.clear()  # one index held at a time: a process searches one home
        _vectors[key] = held
        return held


def _stats(conn: Any) -> _Stats:
    rows, tokens, count, generations = conn.execute(
        "SELECT coalesce(sum(items), 0), coalesce(sum(tokens), 0), count(*),"
        " coalesce(md5(string_agg(generation::text, ',' ORDER BY generation)), '')"
        " FROM search_days"
    ).fetchone()
    return _Stats(rows=int(rows), tokens=int(tokens), version=(int(count), generations))


def _rarer(conn: Any, query: Query, stats: _Stats) -> Query:
    def matching(term: str, prefix: bool) -> int:
        phrase = Phrase(tuple(terms(term)), prefix=prefix)
        if not phrase.tokens:
            return 0
        row = conn.execute(
            "SELECT count(*) FROM search_docs WHERE tsv @@ %s::tsquery", (phrase.tsquery(),)
        )
        return int(row.fetchone()[0])

    return rarer(query, stats.rows, matching)


def _filters(
    sources: list[str], since: date | None, until: date | None
) -> tuple[str, list[object]]:
    clauses, args = [], []
    if sources:
        clauses.append("d.source = ANY(%s)")
        args.append(sources)
    if since:
        clauses.append("d.day >= %s")
        args.append(since)
    if until:
        clauses.append("d.day <= %s")
        args.append(until)
    return " AND ".join(clauses) or "TRUE", args


def _bm25_ranked(
    conn: Any,
    lexical: Lexical,
    stats: _Stats,
    sources: list[str],
    since: date | None,
    until: date | None,
) -> dict[int, float]:
    """doc id -> bm25 (FTS5's: negative, lower is better) of the best full-text matches,
    best first, ties by id (as FTS5 returns them)."""
    match = lexical.tsquery()
    if match is None or not stats.rows:
        return {}
    phrases = lexical.scored
    counted = conn.execute(
        "SELECT "
        + ", ".join("count(*) FILTER (WHERE tsv @@ %s::tsquery)" for _ in phrases)
        + " FROM search_docs WHERE tsv @@ %s::tsquery",
        [*(p.tsquery() for p in phrases), " | ".join(f"( {p.tsquery()} )" for p in phrases)],
    ).fetchone()
    idf = []
    for hits in counted:
        value = math.log((stats.rows - hits + 0.5) / (hits + 0.5))
        idf.append(value if value > 0.0 else 1e-6)
    where, args = _filters(sources, since, until)
    found: dict[int, int] = {}  # doc id -> its tokens (bm25's document length)
    counts: list[tuple[int, int, float]] = []  # (doc id, phrase, f(q, D))
    words = [i for i, p in enumerate(phrases) if len(p.tokens) == 1 and not p.prefix]
    if words:  # a word's weighted count, stored per item: no tsvector to unpack
        for doc_id, size, *values in conn.execute(
            "SELECT d.id, d.tokens"
            + "".join(", coalesce((d.counts ->> %s)::int, 0)" for _ in words)
            + f" FROM search_docs d WHERE d.tsv @@ %s::tsquery AND {where}",
            [*(phrases[i].tokens[0] for i in words), match, *args],
        ):
            found[doc_id] = size
            counts += [(doc_id, i, float(v)) for i, v in zip(words, values, strict=True) if v]
    single = [i for i, p in enumerate(phrases) if len(p.tokens) == 1 and p.prefix]
    if single:  # a prefix's weighted count, summed by the server
        rows = conn.execute(
            "SELECT d.id, d.tokens, q.i, sum(CASE WHEN w = 'A' THEN 2 ELSE 1 END)"
            " FROM search_docs d, unnest(d.tsv) AS u(lexeme, positions, weights),"
            " unnest(%s::text[], %s::bool[], %s::int[]) AS q(lexeme, prefix, i),"
            " unnest(u.weights) AS w"
            f" WHERE d.tsv @@ %s::tsquery AND {where}"
            " AND (u.lexeme = q.lexeme OR (q.prefix AND u.lexeme ^@ q.lexeme))"
            " GROUP BY d.id, d.tokens, q.i",
            [
                [phrases[i].tokens[0] for i in single],
                [phrases[i].prefix for i in single],
                single,
                match,
                *args,
            ],
        )
        for doc_id, size, i, freq in rows:
            found[doc_id] = size
            counts.append((doc_id, i, float(freq)))
    several = [i for i, p in enumerate(phrases) if len(p.tokens) > 1]
    if several:  # a phrase's instances, from its words' positions
        words = sorted({t for i in several for t in phrases[i].tokens})
        items: dict[int, dict[str, list[tuple[int, str]]]] = {}
        for doc_id, size, lexeme, positions, weights in conn.execute(
            "SELECT d.id, d.tokens, u.lexeme, u.positions, u.weights"
            " FROM search_docs d, unnest(d.tsv) AS u(lexeme, positions, weights)"
            f" WHERE d.tsv @@ %s::tsquery AND {where}"
            " AND (u.lexeme = ANY(%s::text[]) OR u.lexeme ^@ ANY(%s::text[]))",
            [match, *args, words, [phrases[i].tokens[-1] for i in several if phrases[i].prefix]],
        ):
            found[doc_id] = size
            items.setdefault(doc_id, {})[lexeme] = list(zip(positions, weights, strict=True))
        counts += [(d, i, phrases[i].frequency(lx)) for d, lx in items.items() for i in several]
    if not found:
        return {}
    ids = np.fromiter(found, dtype=np.int64, count=len(found))
    row = {doc_id: n for n, doc_id in enumerate(found)}
    freq = np.zeros((len(ids), len(phrases)))
    for doc_id, i, value in counts:
        freq[row[doc_id], i] = value
    size = np.fromiter(found.values(), dtype=np.float64, count=len(found))
    # FTS5's bm25, term by term in its order and with its operations, so equal scores stay
    # equal and ties fall to the id as FTS5's do
    avgdl = stats.tokens / stats.rows
    length = K1 * (1 - B + B * size / avgdl)
    score = np.zeros(len(ids))
    for i in range(len(phrases)):
        f = freq[:, i]
        score = score + idf[i] * ((f * (K1 + 1.0)) / (f + length))
    bm25 = -1.0 * score
    best = np.lexsort((ids, bm25))[:CANDIDATES]
    return {int(ids[n]): float(bm25[n]) for n in best}


def _matching(conn: Any, tsquery: str) -> np.ndarray:
    rows = conn.execute("SELECT id FROM search_docs WHERE tsv @@ %s::tsquery", (tsquery,))
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def _hits(conn: Any, best: list[tuple[int, Score]], query: Query) -> list[Hit]:
    if not best:
        return []
    rows = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT id, source, day, item_id, title, text FROM search_docs WHERE id = ANY(%s)",
            ([doc_id for doc_id, _ in best],),
        )
    }
    lexical = Lexical.of(query)
    highlighted = [*(p for p in lexical.optional if p.tokens)] or list(lexical.required)
    hits = []
    for doc_id, why in best:
        source, day, item_id, title, text = rows[doc_id]
        hits.append(
            Hit(
                source=source,
                day=day,
                item_id=item_id,
                title=title,
                snippet=snippet(text, highlighted) or text[:160].replace("\n", " "),
                score=why.fused,
                why=why,
            )
        )
    return hits
