"""Coverage: per (source, day, stage), is the cell current, stale, missing, failed, running
or empty? Computed from the scan index, the ledger and the live jobs' claims (DESIGN.md §3),
then persisted as a snapshot."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Table, delete, func, insert, select
from sqlmodel import Session

from softcopy.db import within
from softcopy.ingestion.models import CellClaim, CoverageCell, CoverageSnapshot, IngestionPlan
from softcopy.ingestion.states import CellState, Outcome, Stage
from softcopy.memory import scan
from softcopy.memory.items import EMPTY_DIGEST
from softcopy.memory.stage import embed_input_digest
from softcopy.memory.tables import LedgerEntry, SourceDay


@dataclass(frozen=True, slots=True)
class Cell:
    source: str
    day: date
    stage: Stage
    state: CellState
    expected_digest: str | None  # the input digest a current cell records
    recorded_digest: str | None  # the input digest the ledger records
    items: int
    job_id: int | None = None  # the live job holding the cell
    done_by: str | None = None  # who last ran it, as the ledger records ("job:42", "cli:…")


def compute(
    session: Session, *, sources: Iterable[str], start: date | None, end: date | None, model: str
) -> list[Cell]:
    """Every cell of `sources` in [start, end] that has data now or had it once."""
    cells: list[Cell] = []
    for source in sources:
        cells += _source_cells(session, source, start, end, model)
    return cells


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
    """A digest of which cells are in which state, with their expected digests."""
    lines = sorted(
        f"{c.source}|{c.day}|{STAGE_ORDER[c.stage]}|{c.state}|{c.expected_digest}\n" for c in cells
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def totals(cells: Iterable[Cell]) -> dict[str, int]:
    counts = Counter(str(c.state) for c in cells)
    return {str(state): counts.get(str(state), 0) for state in CellState}


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
    snapshot = CoverageSnapshot(
        taken_at=now,
        range_start=start,
        range_end=end,
        sources=sources,
        totals=totals(cells),
        fingerprint=fingerprint(cells),
        seconds=seconds,
    )
    session.add(snapshot)
    session.flush()
    insert_rows(
        session,
        CoverageCell.__table__,
        CELL_COLUMNS,
        [
            (
                snapshot.id,
                c.source,
                c.day,
                c.stage.value,
                c.state.value,
                c.expected_digest,
                c.recorded_digest,
                c.items,
                c.job_id,
                c.done_by,
            )
            for c in cells
        ],
    )
    prune(session)
    return snapshot


CELL_COLUMNS = (
    "snapshot_id",
    "source",
    "day",
    "stage",
    "state",
    "expected_digest",
    "recorded_digest",
    "items",
    "job_id",
    "done_by",
)
KEEP_SNAPSHOTS = 20  # the newest snapshots kept; older ones go unless a plan refers to one


def prune(session: Session, keep: int | None = None) -> int:
    """Delete snapshots older than the newest `keep` (KEEP_SNAPSHOTS), except those a plan
    refers to (a plan's coverage is where its cells came from); returns how many went."""
    keep = KEEP_SNAPSHOTS if keep is None else keep
    newest = select(CoverageSnapshot.id).order_by(CoverageSnapshot.id.desc()).limit(keep)  # type: ignore[union-attr]
    cutoff = session.scalar(select(func.min(newest.subquery().c.id)))
    if cutoff is None:
        return 0
    referenced = select(IngestionPlan.snapshot_id).where(IngestionPlan.snapshot_id.is_not(None))  # type: ignore[union-attr]
    doomed = list(
        session.scalars(
            select(CoverageSnapshot.id).where(
                CoverageSnapshot.id < cutoff,  # type: ignore[operator]
                CoverageSnapshot.id.not_in(referenced),  # type: ignore[union-attr]
            )
        )
    )
    for start in range(0, len(doomed), 500):
        chunk = doomed[start : start + 500]
        session.execute(delete(CoverageCell).where(CoverageCell.snapshot_id.in_(chunk)))  # type: ignore[attr-defined]
        session.execute(delete(CoverageSnapshot).where(CoverageSnapshot.id.in_(chunk)))  # type: ignore[union-attr]
    return len(doomed)


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


def _source_cells(
    session: Session, source: str, start: date | None, end: date | None, model: str
) -> list[Cell]:
    # Core statements on the session's connection: the same rows without the ORM's
    # per-row loading, which was most of the time of computing 30,000 cells
    session.flush()  # what the ORM holds pending is read too, as session.execute would
    run = session.connection().execute
    data = {
        day: (items, problems, day_digest)
        for day, items, problems, day_digest in run(
            select(SourceDay.day, SourceDay.items, SourceDay.problems, SourceDay.digest).where(
                SourceDay.source == source, *within(SourceDay.day, start, end)
            )
        )
    }
    ledger = {
        (day, Stage(stage)): (Outcome(outcome), input_digest, output_digest, items, done_by)
        for day, stage, outcome, input_digest, output_digest, items, done_by in run(
            select(
                LedgerEntry.day,
                LedgerEntry.stage,
                LedgerEntry.outcome,
                LedgerEntry.input_digest,
                LedgerEntry.output_digest,
                LedgerEntry.items,
                LedgerEntry.done_by,
            ).where(LedgerEntry.source == source, *within(LedgerEntry.day, start, end))
        )
    }
    claims = {
        (day, Stage(stage)): job_id
        for day, stage, job_id in run(
            select(CellClaim.day, CellClaim.stage, CellClaim.job_id).where(
                CellClaim.source == source, *within(CellClaim.day, start, end)
            )
        )
    }
    cells = []
    for day in sorted(set(data) | {day for day, _ in ledger}):
        items, problems, day_digest = data.get(day, (0, 0, EMPTY_DIGEST))
        upstream_output: str | None = None
        upstream_current = True
        for stage in Stage:
            expected = _expected(stage, day_digest, upstream_output, model)
            entry = ledger.get((day, stage))
            state = _state(
                entry,
                expected,
                upstream_current,
                has_data=items > 0 or problems > 0,
                claimed=(day, stage) in claims,
            )
            cells.append(
                Cell(
                    source=source,
                    day=day,
                    stage=stage,
                    state=state,
                    expected_digest=expected,
                    recorded_digest=entry[1] if entry else None,
                    items=entry[3] if entry else items,
                    job_id=claims.get((day, stage)),
                    done_by=entry[4] if entry else None,
                )
            )
            upstream_output = entry[2] if entry else None
            upstream_current = state is CellState.current
    return cells


def _expected(stage: Stage, day_digest: str, upstream_output: str | None, model: str) -> str | None:
    if stage is Stage.export:
        return day_digest
    if upstream_output is None:
        return None
    if stage is Stage.embed:
        return embed_input_digest(upstream_output, model)
    return upstream_output


def _state(
    entry: tuple[Outcome, str | None, str | None, int, str] | None,
    expected: str | None,
    upstream_current: bool,
    *,
    has_data: bool,
    claimed: bool,
) -> CellState:
    if claimed:
        return CellState.running
    if entry is None:
        return CellState.missing if has_data else CellState.empty
    outcome, recorded = entry[0], entry[1]
    if outcome is Outcome.failed:
        return CellState.failed
    if not upstream_current or recorded != expected:
        return CellState.stale
    return CellState.current
