"""The published search index: `<home>/index.db`, SQLite with FTS5 and stored vectors.

This is the one SQLite-only store (DESIGN.md): a per-home file that search reads. Publish
replaces a (source, day)'s rows in one transaction; search fuses full-text rank and
vector similarity by reciprocal rank.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from softcopy.db import writable
from softcopy.errors import ReadOnlyStorage, StorageFault
from softcopy.faults import sqlite_fault_reason
from softcopy.memory.items import MemoryItem, digest
from softcopy.memory.query import STOPWORDS, Query, parse

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
# Over EXACT_LIMIT vectors, the vector side first scores every row in REDUCED_DIM principal
# directions, then computes exact cosines for the best SHORTLIST rows only: a third of the
# memory traffic per query (bench/search_quality.py measures the overlap with exact search)
EXACT_LIMIT = 20_000
REDUCED_DIM = 64
SHORTLIST = 2_000
COMMON_SHARE = 0.05  # over EXACT_LIMIT items, a word in more than this share is not looked up


@dataclass(frozen=True)
class Score:
    """Why a hit ranks where it does: its full-text and vector parts (None: not a candidate
    of that part) and their reciprocal-rank fusion."""

    fused: float
    lexical_rank: int | None = None  # 1-based rank among full-text matches
    bm25: float | None = None  # FTS5 bm25, lower is better
    vector_rank: int | None = None  # 1-based rank among vector neighbours above the floor
    cosine: float | None = None


@dataclass(frozen=True)
class Hit:
    source: str
    day: date
    item_id: str
    title: str
    snippet: str
    score: float
    why: Score | None = None


class SearchIndex(Protocol):
    """A published search index: this SQLite file (the embedded default) or the team index
    in PostgreSQL (softcopy.memory.pg_index); `softcopy.memory.indexes.open_index` picks."""

    @property
    def where(self) -> str:
        """How messages name it: a path, or a URL without its password."""
        ...

    def check(self) -> None:
        """Raise an EnvironmentFault when the index cannot be written now."""

    def replace_day(
        self, *, source: str, day: date, items: list[MemoryItem], vectors: np.ndarray
    ) -> None: ...

    def day_digests(self, source: str | None = None) -> dict[tuple[str, date], tuple[int, str]]: ...

    def count(self) -> int: ...

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
    ) -> list[Hit]: ...


@dataclass(frozen=True)
class SqliteIndex:
    """The embedded index at `path` (`<home>/index.db`), through this module's functions."""

    path: Path

    @property
    def where(self) -> str:
        return str(self.path)

    def check(self) -> None:
        if not writable(self.path):
            raise ReadOnlyStorage(
                self.path.parent, f"write the search index {self.path}", label="home"
            )

    def replace_day(
        self, *, source: str, day: date, items: list[MemoryItem], vectors: np.ndarray
    ) -> None:
        replace_day(self.path, source=source, day=day, items=items, vectors=vectors)

    def day_digests(self, source: str | None = None) -> dict[tuple[str, date], tuple[int, str]]:
        return day_digests(self.path, source)

    def count(self) -> int:
        return count(self.path)

    def search(self, **kwargs: Any) -> list[Hit]:
        return search(self.path, **kwargs)


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
    _vectors.clear()
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


@dataclass
class _Vectors:
    """The index's vectors held in memory between searches, with what filters need."""

    version: object  # what says the index changed since the vectors were read
    ids: np.ndarray  # int64 doc ids, in rowid order
    matrix: np.ndarray  # float32 rows, one per id
    sources: np.ndarray  # source names
    days: np.ndarray  # int32 day ordinals
    basis: np.ndarray | None = None  # dim x REDUCED_DIM principal directions, when large
    reduced: np.ndarray | None = None  # the rows in those directions
    searched: int = 0  # vector searches served: the reduced rows are made for the second

    def prepare(self) -> None:
        """Count a search; from the second on, over EXACT_LIMIT rows, hold the reduced
        rows (a one-query process, like the CLI, is faster with one exact pass)."""
        self.searched += 1
        large = len(self.ids) > EXACT_LIMIT and self.matrix.shape[1] > REDUCED_DIM
        if large and self.searched >= 2 and self.basis is None:
            self.basis = _principal_directions(self.matrix)
            self.reduced = np.ascontiguousarray(self.matrix @ self.basis)

    def similarity(
        self, rows: np.ndarray | None, vector: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, exact cosines) of the rows nearest `vector` among `rows` (None:
        all): every one of them while there are few, else the SHORTLIST best in the
        reduced space, scored exactly."""
        count = len(self.ids) if rows is None else len(rows)
        if self.basis is None or self.reduced is None or count <= SHORTLIST:
            picked = np.arange(len(self.ids)) if rows is None else rows
            matrix = self.matrix if rows is None else self.matrix[rows]
            return picked, matvec(matrix, vector)
        reduced = self.reduced if rows is None else self.reduced[rows]
        coarse = matvec(reduced, matvec(self.basis.T, vector))
        best = np.argpartition(-coarse, SHORTLIST - 1)[:SHORTLIST]
        picked = best if rows is None else rows[best]
        return picked, matvec(self.matrix[picked], vector)


def matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """`matrix @ vector` on this thread. `@` hands it to BLAS, whose threads cost more
    than they save for one query on a busy machine and keep spinning after it, taking the
    CPU from ONNX and SQLite too: at load 6 on 2 cores, 100k x 64 took p50 4.9 / p95 84 ms
    through BLAS, 1.2 / 15 ms here in the same process."""
    return np.einsum("ij,j->i", matrix, vector)


_vectors: dict[tuple[int, Path, int], _Vectors] = {}


def search(
    path: Path,
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
    """Hybrid search: FTS5 bm25 rank and cosine similarity, fused by reciprocal rank.

    Relevance floor: every full-text match counts; a vector neighbour counts only when its
    cosine reaches `floor` (each embedder's own, calibrated on a labelled set), so a query
    that matches nothing returns no hits. Phrases and exclusions bind vector hits too.
    `parts` leaves one side out (the benchmark compares each side with the fusion)."""
    parsed = parse(query) if isinstance(query, str) else query
    names = list(dict.fromkeys([*sources, *parsed.sources]))
    since = max(filter(None, (since, parsed.since)), default=None)
    until = min(filter(None, (until, parsed.until)), default=None)
    where, args = _filters(names, since, until)
    with connect(path) as conn:
        lexical = {}
        if "text" in parts:
            lexical = _fts_ranked(conn, _rarer(conn, path, parsed).match(), where, args)
        vector = (
            _vector_ranked(conn, path, parsed, query_vector, names, since, until, floor)
            if "vector" in parts
            else {}
        )
        return [
            _hit(conn, doc_id, why.fused, parsed, why) for doc_id, why in fuse(lexical, vector, k)
        ]


def fuse(lexical: dict[int, float], vector: dict[int, float], k: int) -> list[tuple[int, Score]]:
    """The best `k` doc ids of two rankings (each best first) by reciprocal-rank fusion,
    ties by id, each with its Score."""
    fused: dict[int, float] = {}
    for ranking in (lexical, vector):
        for rank, doc_id in enumerate(ranking):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    lexical_rank = {doc_id: rank for rank, doc_id in enumerate(lexical)}
    vector_rank = {doc_id: rank for rank, doc_id in enumerate(vector)}
    return [
        (
            doc_id,
            Score(
                fused=score,
                lexical_rank=_one_based(lexical_rank.get(doc_id)),
                bm25=lexical.get(doc_id),
                vector_rank=_one_based(vector_rank.get(doc_id)),
                cosine=vector.get(doc_id),
            ),
        )
        for doc_id, score in best
    ]


def _rarer(conn: sqlite3.Connection, path: Path, query: Query) -> Query:
    def matching(term: str, prefix: bool) -> int:
        match = Query(prefixes=(term,)).optional_match() if prefix else _one(term)
        row = conn.execute("SELECT count(*) FROM docs_fts WHERE docs_fts MATCH ?", (match,))
        return int(row.fetchone()[0])

    return rarer(query, len(_held_vectors(conn, path).ids), matching)


def rarer(query: Query, total: int, matching: Callable[[str, bool], int]) -> Query:
    """In a large index (`total` items), the query without its optional words that are in
    more than COMMON_SHARE of the items (the rarest one always stays): bm25 gives them
    little weight, but ranking every item that holds one is most of a slow query's time.
    `matching(term, prefix)` counts the items holding a word (or a word starting so)."""
    terms = [*(w for w in query.words if w not in STOPWORDS), *query.prefixes]
    if total <= EXACT_LIMIT or len(terms) < 2:
        return query
    counts = {term: matching(term, term in query.prefixes) for term in terms}
    common = {t for t, n in counts.items() if n > COMMON_SHARE * total}
    if common == set(terms):
        common.discard(min(terms, key=counts.__getitem__))
    if not common:
        return query
    return replace(
        query,
        words=tuple(w for w in query.words if w not in common),
        prefixes=tuple(p for p in query.prefixes if p not in common),
    )


def _one(word: str) -> str:
    return Query(words=(word,)).optional_match() or ""


def _one_based(rank: int | None) -> int | None:
    return None if rank is None else rank + 1


def _filters(sources: list[str], since: date | None, until: date | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if sources:
        clauses.append(f"docs.source IN ({','.join('?' * len(sources))})")
        args += sources
    if since:
        clauses.append("docs.day >= ?")
        args.append(since.isoformat())
    if until:
        clauses.append("docs.day <= ?")
        args.append(until.isoformat())
    return (" AND ".join(clauses) or "1"), args


def _fts_ranked(
    conn: sqlite3.Connection, match: str | None, where: str, args: list[str]
) -> dict[int, float]:
    """doc id -> bm25 (lower is better) of the best full-text matches, best first."""
    if match is None:
        return {}
    if not args:  # no filter: FTS5 alone, without a join per matching row
        rows = conn.execute(
            "SELECT rowid, bm25(docs_fts, 2.0, 1.0) AS rank FROM docs_fts"
            " WHERE docs_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, CANDIDATES),
        )
        return {doc_id: float(rank) for doc_id, rank in rows}
    rows = conn.execute(
        "SELECT docs.id, bm25(docs_fts, 2.0, 1.0) AS rank"
        " FROM docs_fts JOIN docs ON docs.id = docs_fts.rowid"
        f" WHERE docs_fts MATCH ? AND {where} ORDER BY rank LIMIT ?",
        [match, *args, CANDIDATES],
    )
    return {doc_id: float(rank) for doc_id, rank in rows}


def _matching(conn: sqlite3.Connection, match: str) -> np.ndarray:
    rows = conn.execute("SELECT rowid FROM docs_fts WHERE docs_fts MATCH ?", (match,))
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def _vector_ranked(
    conn: sqlite3.Connection,
    path: Path,
    query: Query,
    query_vector: np.ndarray,
    sources: list[str],
    since: date | None,
    until: date | None,
    floor: float,
) -> dict[int, float]:
    """doc id -> cosine of the nearest vectors at or above `floor`, nearest first."""
    if not np.any(query_vector):
        return {}
    required, excluded = query.required_match(), query.excluded_match()
    return nearest(
        _held_vectors(conn, path),
        query_vector,
        sources=sources,
        since=since,
        until=until,
        floor=floor,
        required=(lambda: _matching(conn, required)) if required else None,
        excluded=(lambda: _matching(conn, excluded)) if excluded else None,
    )


def nearest(
    held: _Vectors,
    query_vector: np.ndarray,
    *,
    sources: list[str],
    since: date | None,
    until: date | None,
    floor: float,
    required: Callable[[], np.ndarray] | None,
    excluded: Callable[[], np.ndarray] | None,
) -> dict[int, float]:
    """doc id -> cosine of the `held` vectors nearest `query_vector` at or above `floor`,
    nearest first, among the items that pass the filters (`required` and `excluded` give
    the doc ids the query's phrases and exclusions keep and drop)."""
    if not np.any(query_vector):
        return {}
    if not len(held.ids) or held.matrix.shape[1] != query_vector.shape[0]:
        return {}  # nothing published, or published with another embedder: text still answers
    held.prepare()
    mask = np.ones(len(held.ids), dtype=bool)
    if sources:
        mask &= np.isin(held.sources, sources)
    if since:
        mask &= held.days >= since.toordinal()
    if until:
        mask &= held.days <= until.toordinal()
    if required is not None:
        mask &= np.isin(held.ids, required())
    if excluded is not None:
        mask &= ~np.isin(held.ids, excluded())
    rows = np.flatnonzero(mask) if not mask.all() else None
    picked, similarity = held.similarity(rows, query_vector.astype(np.float32))
    above = np.flatnonzero(similarity >= max(floor, 1e-6))
    if len(above) > CANDIDATES:
        above = above[np.argpartition(-similarity[above], CANDIDATES - 1)[:CANDIDATES]]
    above = above[np.lexsort((picked[above], -similarity[above]))]  # ties: index order
    return {int(held.ids[picked[i]]): float(similarity[i]) for i in above}


def _held_vectors(conn: sqlite3.Connection, path: Path) -> _Vectors:
    """The index's vectors, read once and again only after a write: `data_version` changes
    when another connection commits, `total_changes` when this one does."""
    version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
    key = (os.getpid(), path.resolve(), id(conn))
    held = _vectors.get(key)
    if held is not None and held.version == version:
        return held
    ids, blobs, sources, days = [], [], [], []
    for doc_id, blob, source, day in conn.execute(
        "SELECT id, vector, source, day FROM docs ORDER BY id"
    ):
        ids.append(doc_id)
        blobs.append(blob)
        sources.append(source)
        days.append(date.fromisoformat(day).toordinal())
    dim = len(blobs[0]) // 4 if blobs else 0
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32)
    if blobs and len(matrix) != dim * len(ids):
        dim = 0  # vectors of several widths: no embedder can compare with all of them
        matrix = np.zeros((len(ids), 0), dtype=np.float32)
    held = _Vectors(
        version=version,
        ids=np.asarray(ids, dtype=np.int64),
        matrix=matrix.reshape(len(ids), dim),
        sources=np.asarray(sources, dtype=object),
        days=np.asarray(days, dtype=np.int32),
    )
    _vectors.clear()  # one index held at a time: a process searches one home
    _vectors[key] = held
    return held


def _principal_directions(matrix: np.ndarray) -> np.ndarray:
    """The REDUCED_DIM directions along which a sample of the rows varies most (a fixed
    sample: the same index gives the same basis)."""
    step = max(1, len(matrix) // 8192)
    sample = matrix[::step].astype(np.float64)
    # The sample's right singular vectors, as the eigenvectors of its dim x dim Gram matrix
    # (eigh: ascending): the SVD also made the 8k x dim left ones, 0.55 s at best against
    # 38 ms for 8k x 384, and up to 15 s on the busy 2-core machine, in a process's second
    # search.
    _, vectors = np.linalg.eigh(sample.T @ sample)
    return np.ascontiguousarray(vectors[:, ::-1][:, :REDUCED_DIM].astype(np.float32))


def _hit(conn: sqlite3.Connection, doc_id: int, score: float, query: Query, why: Score) -> Hit:
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
        why=why,
    )


def _snippet(conn: sqlite3.Connection, doc_id: int, query: Query) -> str | None:
    positive = query.optional_match() or query.required_match()
    if positive is None:
        return None
    row = conn.execute(
        "SELECT snippet(docs_fts, 1, '[', ']', '…', 16) FROM docs_fts"
        " WHERE docs_fts MATCH ? AND rowid = ?",
        (positive, doc_id),
    ).fetchone()
    return row[0].replace("\n", " ") if row and "[" in row[0] else None
