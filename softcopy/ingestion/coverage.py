"""Coverage: per (source, day, stage), is the cell current, stale, missing, failed, running
or empty? Computed from the scan index, the ledger and the live jobs' claims (DESIGN.md §3),
then persisted as a snapshot."""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Date,
    String,
    Table,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlmodel import Session

from softcopy.db import within
from softcopy.ingestion.models import (
    CellClaim,
    CoverageCell,
    CoverageHead,
    CoverageSnapshot,
    IngestionPlan,
)
from softcopy.ingestion.states import CellState, Outcome, Stage
from softcopy.memory import scan
from softcopy.memory.items import EMPTY_DIGEST
from softcopy.memory.stage import embed_input_digest
from softcopy.memory.tables import LedgerEntry, SourceDay


@dataclass(slots=True, unsafe_hash=True)
class Cell:
    """A coverage cell. Treat it as immutable (it hashes by value): it is not frozen only
    because a frozen dataclass costs five times as much to build, and coverage builds one
    per (source, day, stage) — 33,000 for ten years of three sources."""

    source: str
    day: date
    stage: Stage
    state: CellState
    expected_digest: str | None  # the input digest a current cell records
    recorded_digest: str | None  # the input digest the ledger records
    items: int
    job_id: int | None = None  # the live job holding the cell
    done_by: str | None = None  # who last ran it, as the ledger records ("job:42", "cli:…")
    artifact_missing: bool = False  # stale because the file its ledger entry names is gone


def compute(
    session: Session,
    *,
    sources: Iterable[str],
    start: date | None,
    end: date | None,
    model: str,
    present: Presence | None = None,
) -> list[Cell]:
    """Every cell of `sources` in [start, end] that has data now or had it once. With
    `present`, a current export or embed cell whose artifact is gone is stale instead."""
    cells = Cells()
    for source in sources:
        begin = len(cells)
        cells += _source_cells(session, source, start, end, model, present, cells.inputs)
        cells.spans[source] = (begin, len(cells))
    return cells


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while coverage or a plan builds its objects (tens of
    thousands of cells and items, none in a cycle): each collection the allocations set
    off walks every object the process holds, and a full one cost 60-90 ms of a ten-year
    plan. What they leave is collected when the collector runs next."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class Cells(list[Cell]):
    """`compute`'s cells, each source's together in day and stage order, and per source a
    digest of what they were computed from (its day, ledger and claim rows as read, the
    days whose artifact is gone, the model, this module's code). The same inputs give the
    same cells, so `persist` knows a source's cells did not change without digesting them
    (digesting 33,000 cells column by column was a third of ten years' coverage). Treat it
    as immutable, like its cells: a changed list would no longer match its digests."""

    __slots__ = ("inputs", "spans")

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}  # source → digest of what its cells came from
        self.spans: dict[str, tuple[int, int]] = {}  # source → [begin, end) in the list


STAGE_ORDER = {stage: i for i, stage in enumerate(Stage)}


@dataclass(frozen=True, slots=True)
class FutureDays:
    """Days after today a source has items for: a wrong clock or a typo in a record. They
    are never caught up (catch_up_recent stops at today), so coverage warns of them."""

    source: str
    days: list[date]
    items: int
    today: date  # the day they are after, in the configured timezone

    def describe(self) -> str:
        shown = ", ".join(map(str, self.days[:3]))
        more = f", … {len(self.days) - 3} more" if len(self.days) > 3 else ""
        return (
            f"source {self.source!r} has {self.items} items dated after today ({self.today}) "
            f"on {len(self.days)} day(s): {shown}{more}"
        )


def future_days(session: Session, *, sources: Iterable[str], today: date) -> list[FutureDays]:
    """Per source, the days after `today` it has items for, as the last scan found."""
    days: dict[str, list[date]] = {}
    items: Counter[str] = Counter()
    for source, day, count in session.execute(
        select(SourceDay.source, SourceDay.day, SourceDay.items)
        .where(SourceDay.source.in_(list(sources)), SourceDay.day > today, SourceDay.items > 0)  # type: ignore[attr-defined]
        .order_by(SourceDay.source, SourceDay.day)  # type: ignore[arg-type]
    ):
        days.setdefault(source, []).append(day)
        items[source] += count
    return [FutureDays(source, found, items[source], today) for source, found in days.items()]


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """A record a source scan could not read as it is, as coverage reports it."""

    source: str
    location: str  # file, and line, message number or commit
    reason: str
    day: date | None  # None: its day cannot be told, a problem of the source (fails no day)
    repaired: bool  # a warning: the item is indexed, with U+FFFD for unreadable text

    def describe(self) -> str:
        what = "repaired" if self.repaired else "day unknown" if self.day is None else self.day
        return f"{self.source} ({what}): {self.location}: {self.reason}"


PROBLEMS_LISTED = 1000  # a report lists this many; `problems` says how many there are


def problems(
    session: Session, *, sources: Iterable[str], start: date | None, end: date | None
) -> tuple[list[RecordProblem], int]:
    """The sources' problems as the last scan found them: undated ones, then those of days
    in [start, end] by day; at most PROBLEMS_LISTED of them, and how many there are."""
    names = list(sources)
    found = [
        RecordProblem(p.source, p.location, p.reason, p.day, p.repaired)
        for p in scan.source_problems(session, names, start, end, limit=PROBLEMS_LISTED)
    ]
    total = len(found)
    if total == PROBLEMS_LISTED:
        total = scan.count_problems(session, names, start, end)
    return found, total


def fingerprint(cells: Iterable[Cell]) -> str:
    """A digest of which cells are in which state, with their expected digests: the same
    for the same cells in any order of sources. Each source's cells must come in day and
    stage order, as `compute` gives them (and any subset of them keeps)."""
    return _combine(
        {source: _columns_digest(part, FINGERPRINTED) for source, part in _split(cells).items()}
    )


def whole_fingerprint(
    session: Session, cells: list[Cell], *, start: date | None, end: date | None
) -> str:
    """`fingerprint(cells)` of all the cells `compute` gave for [start, end]: each source's
    part is taken from its head when the head holds cells computed from the same inputs
    (nothing is written)."""
    if not isinstance(cells, Cells):
        return fingerprint(cells)
    heads = _heads(session.connection(), lineage(start, end), list(cells.spans))
    prints = {}
    for source, span in cells.spans.items():
        if span[0] == span[1]:
            continue
        head_key, _, head_print = heads.get(source, "").partition("/")
        if head_key == cells.inputs[source]:
            prints[source] = head_print
        else:
            prints[source] = _columns_digest(_span(cells, span), FINGERPRINTED)
    return _combine(prints)


def _heads(conn: Any, line: str, sources: list[str]) -> dict[str, str]:
    return dict(
        conn.execute(
            select(CoverageHead.source, CoverageHead.digest).where(
                CoverageHead.lineage == line,
                CoverageHead.source.in_(sources),  # type: ignore[attr-defined]
            )
        ).all()
    )


FINGERPRINTED = ("day", "stage", "state", "expected_digest")
PERSISTED = (
    "source",
    "day",
    "stage",
    "state",
    "expected_digest",
    "recorded_digest",
    "items",
    "job_id",
    "done_by",
    "artifact_missing",
)


def _split(cells: Iterable[Cell]) -> dict[str, list[Cell]]:
    by_source: dict[str, list[Cell]] = {}
    for c in cells:
        part = by_source.get(c.source)
        if part is None:
            part = by_source[c.source] = []
        part.append(c)
    return by_source


def _combine(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for source in sorted(digests):
        h.update(f"{source}\x1e{digests[source]}\x1d".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _columns_digest(cells: list[Cell], names: tuple[str, ...]) -> str:
    return _digests(cells, names)[0]


def _digests(cells: list[Cell], *groups: tuple[str, ...]) -> list[str]:
    """Per group of field names, a digest of those fields of the cells, taken a column at
    a time: the joins run at C speed (a line per cell cost 50 ms for ten years), and a
    column two groups share is read once."""
    texts: dict[str, bytes] = {}
    found = []
    for names in groups:
        h = hashlib.sha256()
        for name in names:
            text = texts.get(name)
            if text is None:
                column = map(attrgetter(name), cells)
                if name == "day":  # a day as its ordinal: a third of isoformat's cost
                    column = map(date.toordinal, column)
                joined = "\x1f".join(map(str, column))
                text = texts[name] = f"{name}\x1e{len(cells)}\x1e{joined}\x1d".encode(
                    "utf-8", "surrogatepass"
                )
            h.update(text)
        found.append(h.hexdigest())
    return found


def totals(cells: Iterable[Cell]) -> dict[str, int]:
    counts = Counter(map(attrgetter("state"), cells))
    return {str(state): counts.get(state, 0) for state in CellState}


def lineage(start: date | None, end: date | None) -> str:
    """Snapshots of the same range of days share their unchanged cells' rows."""
    return f"{start or ''}..{end or ''}"


def persist(
    session: Session,
    *,
    cells: list[Cell],
    sources: list[str],
    start: date | None,
    end: date | None,
    now: datetime,
    seconds: float,
) -> CoverageSnapshot:
    """A snapshot of `cells`, writing only the rows of cells that changed since the newest
    rows of its lineage (per source: none at all when its cells are those of its head).

    A source's head holds `key/fingerprint`: the key says which cells its newest rows are
    (the digest of the inputs `compute` gave them, or for other lists of cells, of the
    cells themselves), the fingerprint is their part of the snapshot's. A source whose key
    did not change takes its fingerprint from the head and digests no cell."""
    line = lineage(start, end)
    spans = cells.spans if isinstance(cells, Cells) else None
    inputs = cells.inputs if isinstance(cells, Cells) else {}
    if spans is not None:
        by_source = {source: _span(cells, spans.get(source)) for source in sources}
        by_source |= {source: _span(cells, span) for source, span in spans.items()}
    else:
        by_source = {source: [] for source in sources} | _split(cells)
    snapshot = CoverageSnapshot(
        taken_at=now,
        range_start=start,
        range_end=end,
        sources=sources,
        totals=totals(cells),
        fingerprint="",
        seconds=seconds,
        lineage=line,
    )
    session.add(snapshot)
    session.flush()  # takes SQLite's write lock: no other snapshot is written meanwhile
    conn = session.connection()
    if conn.dialect.name == "postgresql":  # one writer of snapshot rows at a time
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SNAPSHOT_LOCK})")
    assert snapshot.id is not None
    heads = _heads(conn, line, list(by_source))
    prints: dict[str, str] = {}
    for source, part in by_source.items():
        key = inputs.get(source)
        head_key, _, head_print = heads.get(source, "").partition("/")
        if key is not None and key == head_key:
            prints[source] = head_print  # its newest rows are these cells: shared
            continue
        if key is None:
            prints[source], cells_digest = _digests(part, FINGERPRINTED, PERSISTED)
            key = "cells:" + cells_digest
            if key == head_key:
                continue
        else:
            prints[source] = _columns_digest(part, FINGERPRINTED)
        _replace_changed(session, snapshot.id, line, source, part)
        digest = f"{key}/{prints[source]}"
        if source in heads:
            conn.execute(
                update(CoverageHead)
                .where(CoverageHead.lineage == line, CoverageHead.source == source)  # type: ignore[arg-type]
                .values(digest=digest)
            )
        else:
            conn.execute(insert(CoverageHead).values(lineage=line, source=source, digest=digest))
    snapshot.fingerprint = _combine({s: d for s, d in prints.items() if by_source[s]})
    session.add(snapshot)
    prune(session)
    return snapshot


def _span(cells: list[Cell], span: tuple[int, int] | None) -> list[Cell]:
    return cells[span[0] : span[1]] if span else []


SNAPSHOT_LOCK = 7412  # PostgreSQL advisory lock key (the migration lock is 7411)


def _replace_changed(
    session: Session, snapshot_id: int, line: str, source: str, cells: list[Cell]
) -> None:
    """End the source's newest rows of the lineage that differ from `cells` (or have no cell
    now) and insert rows for the cells that differ (or have no row)."""
    conn = session.connection()
    table = CoverageCell
    newest: dict[tuple[date, str], tuple[int, tuple[Any, ...]]] = {}
    for row_id, day, *values in conn.execute(
        select(table.id, _raw(table.day), *[_raw_if_enum(n) for n in PERSISTED[2:]]).where(
            table.lineage == line,
            table.source == source,
            table.ended_by.is_(None),  # type: ignore[union-attr]
        )
    ).all():
        values[-1] = bool(values[-1])
        newest[_as_date(day), values[0]] = (row_id, tuple(values))
    ended: list[int] = []
    fresh = []
    for c in cells:
        values = (
            str(c.stage),
            str(c.state),
            c.expected_digest,
            c.recorded_digest,
            c.items,
            c.job_id,
            c.done_by,
            bool(c.artifact_missing),
        )
        old = newest.pop((c.day, values[0]), None)
        if old is not None and old[1] == values:
            continue
        if old is not None:
            ended.append(old[0])
        fresh.append((snapshot_id, line, source, c.day, *values))
    ended += [row_id for row_id, _ in newest.values()]  # cells no longer there
    for begin in range(0, len(ended), 500):
        conn.execute(
            update(table)
            .where(table.id.in_(ended[begin : begin + 500]))  # type: ignore[union-attr]
            .values(ended_by=snapshot_id)
        )
    insert_rows(session, table.__table__, CELL_COLUMNS, fresh)  # type: ignore[arg-type]


def _raw_if_enum(name: str) -> Any:
    column = getattr(CoverageCell, name)
    return _raw(column) if name in ("stage", "state") else column


CELL_COLUMNS = ("snapshot_id", "lineage", *PERSISTED)
STAGE_RANK = case(
    {stage.value: i for i, stage in enumerate(Stage)}, value=type_coerce(CoverageCell.stage, String)
)
KEEP_SNAPSHOTS = 20  # the newest snapshots kept; older ones go unless a plan refers to one


def snapshot_cells(
    session: Session,
    snapshot: CoverageSnapshot,
    *,
    sources: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[Cell]:
    """The cells of a persisted snapshot (those of `sources` in [start, end]), in the
    order `compute` gave them."""
    table = CoverageCell
    names = [s for s in snapshot.sources if sources is None or s in sources]
    session.flush()
    rows = (
        session.connection()
        .execute(
            select(_raw(table.day), *[_raw_if_enum(n) for n in PERSISTED if n != "day"])
            .where(
                table.lineage == snapshot.lineage,
                table.source.in_(names),  # type: ignore[attr-defined]
                table.snapshot_id <= snapshot.id,
                or_(table.ended_by.is_(None), table.ended_by > snapshot.id),  # type: ignore[union-attr,operator]
                *within(table.day, start, end),
            )
            .order_by(table.day, STAGE_RANK)  # each source's cells in compute's order
        )
        .all()
    )
    stage_of = {s.value: s for s in Stage}
    state_of = {s.value: s for s in CellState}
    days: dict[Any, date] = {}
    found: dict[str, list[Cell]] = {name: [] for name in names}
    for day, source, stage, state, *rest in rows:
        when = days.get(day)
        if when is None:
            when = days[day] = _as_date(day)
        rest[-1] = bool(rest[-1])
        found[source].append(Cell(source, when, stage_of[stage], state_of[state], *rest))
    cells: list[Cell] = []
    for name in names:
        cells += found[name]
    return cells


def prune(session: Session, keep: int | None = None) -> int:
    """Delete snapshots older than the newest `keep` (KEEP_SNAPSHOTS), except those a plan
    refers to (a plan's coverage is where its cells came from), and the cell rows no kept
    snapshot has; returns how many snapshots went."""
    keep = KEEP_SNAPSHOTS if keep is None else keep
    newest = select(CoverageSnapshot.id).order_by(CoverageSnapshot.id.desc()).limit(keep)  # type: ignore[union-attr]
    cutoff = session.scalar(select(func.min(newest.subquery().c.id)))
    if cutoff is None:
        return 0
    referenced = select(IngestionPlan.snapshot_id).where(IngestionPlan.snapshot_id.is_not(None))  # type: ignore[union-attr]
    doomed = session.execute(
        select(CoverageSnapshot.id, CoverageSnapshot.lineage).where(
            CoverageSnapshot.id < cutoff,  # type: ignore[operator]
            CoverageSnapshot.id.not_in(referenced),  # type: ignore[union-attr]
        )
    ).all()
    if not doomed:
        return 0
    ids = [row_id for row_id, _ in doomed]
    for begin in range(0, len(ids), 500):
        chunk = ids[begin : begin + 500]
        session.execute(delete(CoverageSnapshot).where(CoverageSnapshot.id.in_(chunk)))  # type: ignore[union-attr]
    for line in sorted({line for _, line in doomed}):
        _prune_lineage(session, line, max(ids))
    return len(doomed)


def _prune_lineage(session: Session, line: str, newest_doomed: int) -> None:
    cell, kept = CoverageCell, CoverageSnapshot
    # ended rows that no kept snapshot of the lineage falls within
    session.execute(
        delete(cell).where(
            cell.lineage == line,
            cell.ended_by.is_not(None),  # type: ignore[union-attr]
            cell.snapshot_id <= newest_doomed,
            ~select(kept.id)
            .where(
                kept.lineage == line,
                kept.id >= cell.snapshot_id,
                kept.id < cell.ended_by,  # type: ignore[operator]
            )
            .exists(),
        )
    )
    # the newest rows stay while a snapshot at least as new as each does; those dropped
    # take their source's head with them (the next snapshot writes its rows again)
    newest_kept = session.scalar(select(func.max(kept.id)).where(kept.lineage == line))
    stranded = [cell.lineage == line, cell.ended_by.is_(None)]  # type: ignore[union-attr]
    if newest_kept is not None:
        stranded.append(cell.snapshot_id > newest_kept)
    gone = sorted(set(session.scalars(select(cell.source).where(*stranded).distinct())))
    if gone:
        session.execute(delete(cell).where(*stranded))
        session.execute(
            delete(CoverageHead).where(
                CoverageHead.lineage == line,
                CoverageHead.source.in_(gone),  # type: ignore[attr-defined]
            )
        )


def insert_rows(
    session: Session, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Rows as tuples in executemany batches straight to the driver, without SQLAlchemy's
    per-row parameter processing (most of the cost of persisting 30,000 cells). Values must
    be what the driver takes: enums as their values; dates are made ISO text on SQLite, as
    SQLAlchemy's Date stores them there."""
    if not rows:
        return
    conn = session.connection()
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    values: list[Any] = list(zip(*rows, strict=True))  # column by column: C-speed loops
    if conn.dialect.name == "sqlite":
        for i, name in enumerate(columns):
            if isinstance(table.c[name].type, Date):
                values[i] = [v.isoformat() if v is not None else None for v in values[i]]
    params: list[Any]
    if compiled.positional:
        ordered = [values[columns.index(n)] for n in compiled.positiontup or ()]
        params = list(zip(*ordered, strict=True))
    else:
        params = [dict(zip(columns, r, strict=True)) for r in zip(*values, strict=True)]
    for start in range(0, len(params), 5000):
        conn.exec_driver_sql(str(compiled), params[start : start + 5000])


Presence = Callable[[Stage, str, list[date]], set[date]]
"""Which of a source's days have a stage's artifact in place (memory.artifacts.present_days
bound to the settings); coverage asks it about the days of current export and embed cells."""

ARTIFACT_STAGES = (Stage.export, Stage.embed)  # the stages whose ledger entry names a file


def _source_cells(
    session: Session,
    source: str,
    start: date | None,
    end: date | None,
    model: str,
    present: Presence | None,
    inputs: dict[str, str],
) -> list[Cell]:
    """The source's cells; puts the digest of what they were computed from in `inputs`."""
    # Core statements on the session's connection, the enum columns read as their text,
    # the rows fetched as the driver's tuples: the same rows without the ORM's (or the
    # Enum type's, or Row's) per-row work. Days are keys as the driver returns them (ISO
    # text on SQLite, dates on PostgreSQL), made dates once.
    session.flush()  # what the ORM holds pending is read too, as session.execute would
    conn = session.connection()
    read: list[list[Any]] = []  # every row read, for the digest of the inputs

    def run(statement: Any) -> list[Any]:
        rows = _fetch(conn, statement)
        read.append(rows)
        return rows

    data = {
        day: (items, problems, day_digest)
        for day, items, problems, day_digest in run(
            select(
                _raw(SourceDay.day), SourceDay.items, SourceDay.problems, SourceDay.digest
            ).where(SourceDay.source == source, *within(SourceDay.day, start, end))
        )
    }
    # per day, the ledger entries of export, embed, publish (None where there is none)
    ledger: dict[Any, list[Entry | None]] = {}
    files: dict[int, list[Any]] = {0: [], 1: []}  # export's and embed's days with a file
    for day, stage, outcome, input_digest, output_digest, items, done_by, has_file in run(
        select(
            _raw(LedgerEntry.day),
            _raw(LedgerEntry.stage),
            _raw(LedgerEntry.outcome),
            LedgerEntry.input_digest,
            LedgerEntry.output_digest,
            LedgerEntry.items,
            LedgerEntry.done_by,
            LedgerEntry.artifact_sha.is_not(None),  # type: ignore[union-attr]
        ).where(LedgerEntry.source == source, *within(LedgerEntry.day, start, end))
    ):
        i = STAGE_INDEX[stage]
        entries = ledger.get(day)
        if entries is None:
            entries = ledger[day] = [None, None, None]
        entries[i] = (outcome == FAILED, input_digest, output_digest, items, done_by)
        if has_file and i < 2:
            files[i].append(day)
    claims: dict[Any, list[int | None]] = {}
    for day, stage, job_id in run(
        select(_raw(CellClaim.day), _raw(CellClaim.stage), CellClaim.job_id).where(
            CellClaim.source == source, *within(CellClaim.day, start, end)
        )
    ):
        claims.setdefault(day, [None, None, None])[STAGE_INDEX[stage]] = job_id
    keys = sorted(set(data).union(ledger))  # ISO text sorts as its dates do
    days = dict(zip(keys, map(_as_date, keys), strict=True))
    gone: list[set[Any]] = [set(), set()]  # export's, embed's days whose artifact is gone
    if present is not None:
        for i, stage in enumerate(ARTIFACT_STAGES):
            if files[i]:
                there = present(stage, source, [days[k] for k in files[i]])
                gone[i] = {k for k in files[i] if days[k] not in there}
    gone_export, gone_embed = gone
    inputs[source] = _inputs_digest(
        model, start, end, present is not None, read, [sorted(g, key=str) for g in gone]
    )
    export, embed, publish = Stage.export, Stage.embed, Stage.publish
    current, stale, running = CellState.current, CellState.stale, CellState.running
    idle = [None, None, None]
    cells: list[Cell] = []
    add = cells.append
    missing, empty = CellState.missing, CellState.empty
    for key, day in days.items():  # in day order
        items, problems, day_digest = data.get(key, (0, 0, EMPTY_DIGEST))
        absent = missing if items > 0 or problems > 0 else empty
        entries = ledger.get(key)
        if entries is None and key not in claims:  # never done, held by no job
            add(Cell(source, day, export, absent, day_digest, None, items))
            add(Cell(source, day, embed, absent, None, None, items))
            add(Cell(source, day, publish, absent, None, None, items))
            continue
        e, m, p = entries or idle
        held = claims.get(key, idle)
        # export: its input is the day's items as the last scan found them
        lost = False
        if held[0] is not None:
            state = running
        elif e is None:
            state = absent
        elif e[0]:
            state = CellState.failed
        elif e[1] != day_digest:
            state = stale
        elif key in gone_export:  # done, but the file it wrote is gone: redo it
            state, lost = stale, True
        else:
            state = current
        if e is None:
            add(Cell(source, day, export, state, day_digest, None, items, held[0]))
            upstream = None
        else:
            add(Cell(source, day, export, state, day_digest, e[1], e[3], held[0], e[4], lost))
            upstream = e[2]
        # embed: its input is what export wrote, and the model
        expected = None if upstream is None else embed_input_digest(upstream, model)
        ok, lost = state is current, False
        if held[1] is not None:
            state = running
        elif m is None:
            state = absent
        elif m[0]:
            state = CellState.failed
        elif not ok or m[1] != expected:
            state = stale
        elif key in gone_embed:
            state, lost = stale, True
        else:
            state = current
        if m is None:
            add(Cell(source, day, embed, state, expected, None, items, held[1]))
            upstream = None
        else:
            add(Cell(source, day, embed, state, expected, m[1], m[3], held[1], m[4], lost))
            upstream = m[2]
        # publish: its input is what embed wrote
        ok = state is current
        if held[2] is not None:
            state = running
        elif p is None:
            state = absent
        elif p[0]:
            state = CellState.failed
        elif not ok or p[1] != upstream:
            state = stale
        else:
            state = current
        if p is None:
            add(Cell(source, day, publish, state, upstream, None, items, held[2]))
        else:
            add(Cell(source, day, publish, state, upstream, p[1], p[3], held[2], p[4]))
    return cells


Entry = tuple[bool, str | None, str | None, int, str]  # failed?, input, output, items, by
STAGE_INDEX = {stage.value: i for i, stage in enumerate(Stage)}
FAILED = Outcome.failed.value


def _fetch(conn: Any, statement: Any) -> list[Any]:
    """The statement's rows as the driver's own tuples, in one fetch (a Row each costs)."""
    result = conn.execute(statement)
    try:
        return result.cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        result.close()


CODE = hashlib.sha256(
    Path(__file__).read_bytes()
    + repr(embed_input_digest.__code__.co_code).encode()
    + repr([*map(str, Stage), *map(str, CellState), EMPTY_DIGEST]).encode()
).hexdigest()
"""This module's code, the embed digest's, the stages' and states' names: a digest of a
source's inputs includes it, so cells computed by changed code are never taken for those
the old code persisted."""


def _inputs_digest(
    model: str,
    start: date | None,
    end: date | None,
    checked: bool,
    rows: list[list[Any]],
    gone: list[list[Any]],
) -> str:
    """A digest of everything a source's cells are computed from. The reprs of the driver's
    tuples (text, numbers, None; dates on PostgreSQL) are made at C speed; the same rows
    read in another order give another digest, which costs a diff, never a wrong answer."""
    h = hashlib.sha256(f"{CODE}\x1e{model}\x1e{start}\x1e{end}\x1e{checked}".encode())
    for part in (*rows, *gone):
        h.update(b"\x1d")
        h.update(repr(part).encode("utf-8", "surrogatepass"))
    return "in:" + h.hexdigest()


def _raw(column: Any) -> Any:
    """The column as the driver returns it: no per-row conversion by its SQLAlchemy type."""
    return type_coerce(column, String)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
