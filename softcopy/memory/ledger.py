"""The ledger: per (source, day, stage), what the last run read and wrote, and who ran it.

This is what coverage compares with the sources to tell current from stale and missing.
Every skipped record is counted once: a day's export entry counts that day's bad records it
skipped, and records whose day cannot be told, which belong to no day's entry, are counted
per source (`undated_skips`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from softcopy.db import dialect_insert
from softcopy.memory import scan
from softcopy.memory.stages import Outcome, Stage
from softcopy.memory.tables import LedgerEntry

if TYPE_CHECKING:
    from softcopy.memory.stage import StageResult


def get(session: Session, *, source: str, day: date, stage: Stage) -> LedgerEntry | None:
    return session.get(LedgerEntry, (source, day, stage))


def undated_skips(session: Session, *, source: str) -> int:
    """Records of `source` skipped because their day cannot be told (as of its last scan)."""
    return scan.undated_count(session, source)


def record(session: Session, result: StageResult, *, done_by: str, now: datetime) -> LedgerEntry:
    """A stage's result as its (source, day, stage) ledger entry: done, with its digests."""
    entry = get(session, source=result.source, day=result.day, stage=result.stage) or LedgerEntry(
        source=result.source,
        day=result.day,
        stage=result.stage,
        outcome=Outcome.ok,
        attempted_at=now,
        done_by=done_by,
    )
    entry.outcome = Outcome.ok
    entry.input_digest = result.input_digest
    entry.output_digest = result.output_digest
    entry.artifact_sha = result.artifact_sha
    entry.items = result.items
    entry.skipped = result.skipped
    entry.done_at = entry.attempted_at = now
    entry.done_by = done_by
    entry.error = None
    session.add(entry)
    return entry


def row(result: StageResult, *, done_by: str, now: datetime) -> dict[str, Any]:
    """A stage's result as the values of its ledger row (see `upsert`)."""
    return {
        "source": result.source,
        "day": result.day,
        "stage": result.stage,
        "outcome": Outcome.ok,
        "input_digest": result.input_digest,
        "output_digest": result.output_digest,
        "artifact_sha": result.artifact_sha,
        "items": result.items,
        "skipped": result.skipped,
        "done_at": now,
        "attempted_at": now,
        "done_by": done_by,
        "error": None,
    }


def upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write many `row`s in one statement batch, each replacing its (source, day, stage)
    entry: what `record` does for one, without reading the entries first (a job's group
    commit writes a group of days this way)."""
    if not rows:
        return
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    base = dialect_insert(session.get_bind(), table)
    keys = [c.name for c in table.primary_key.columns]
    statement = base.on_conflict_do_update(
        index_elements=keys,
        set_={k: base.excluded[k] for k in rows[0] if k not in keys},
    )
    session.execute(statement, rows)


def entries_for(
    session: Session, source: str, days: list[date], stages: list[Stage]
) -> dict[tuple[date, Stage], Row[Any]]:
    """The ledger rows of `source` for those days and stages, read at once: (day, stage) →
    a row with the entry's columns (a step reads its days' upstream entries this way)."""
    if not days:
        return {}
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    found: dict[tuple[date, Stage], Row[Any]] = {}
    for start in range(0, len(days), 500):
        chunk = days[start : start + 500]
        query = sa_select(table).where(
            table.c.source == source,
            table.c.day.in_(chunk),
            table.c.stage.in_([s.value for s in stages]),
        )
        for entry in session.execute(query):
            found[(entry.day, Stage(entry.stage))] = entry
    return found


def record_failure(
    session: Session,
    *,
    source: str,
    day: date,
    stage: Stage,
    error: str,
    done_by: str,
    now: datetime,
) -> LedgerEntry:
    """Mark the last attempt failed; the digests of the last good run stay as they were."""
    entry = get(session, source=source, day=day, stage=stage) or LedgerEntry(
        source=source,
        day=day,
        stage=stage,
        outcome=Outcome.failed,
        attempted_at=now,
        done_by=done_by,
    )
    entry.outcome = Outcome.failed
    entry.attempted_at = now
    entry.done_by = done_by
    entry.error = error
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    source: str | None = None,
    stage: Stage | None = None,
    start: date | None = None,
    end: date | None = None,
    limit: int | None = None,
) -> list[LedgerEntry]:
    query = select(LedgerEntry)
    if source:
        query = query.where(LedgerEntry.source == source)
    if stage:
        query = query.where(LedgerEntry.stage == stage)
    if start:
        query = query.where(LedgerEntry.day >= start)
    if end:
        query = query.where(LedgerEntry.day <= end)
    query = query.order_by(LedgerEntry.source, LedgerEntry.day, LedgerEntry.stage)
    if limit:
        query = query.limit(limit)
    order = list(Stage)
    return sorted(session.exec(query), key=lambda e: (e.source, e.day, order.index(e.stage)))
