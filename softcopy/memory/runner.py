"""Run stages over sources and days in this process, one transaction per (stage, source,
day). What the stage primitives and the legacy `ingest` use; jobs use the control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.errors import OperationFailed, UnreadableRecords
from softcopy.memory import artifacts, ledger, scan
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stage import ShrinkGuard, ShrinkRefused, StageContext, StageResult
from softcopy.memory.stages import Stage
from softcopy.memory.tables import LedgerEntry, SourceDay

# Which job holds a cell (source, day, stage), if any: the face supplies it from the
# service (the memory layer knows nothing of jobs); such cells are left to their job.
Held = Callable[[str, date, Stage], int | None]


def nothing_held(source: str, day: date, stage: Stage) -> int | None:
    return None


COMMIT_EVERY = 200  # cells per transaction: a commit per day costs more than the day here
Progress = Callable[[int, int, str], None]  # done, total, what is running now


@dataclass(frozen=True)
class Failure:
    stage: Stage
    source: str
    day: date
    error: str
    unreadable: bool = False  # unreadable source records: skipping bad records would do it
    shrink: bool = False  # publish would empty a published day: allow_shrink would do it


@dataclass
class RunSummary:
    results: list[StageResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # bad records whose day cannot be told, per source (when export ran): no day can hold
    # them, so they fail no day and are skipped; each is counted once, here and by
    # scan.undated_count. A strict run (no skip_bad_records) still ends not ok for them.
    undated: dict[str, list[str]] = field(default_factory=dict)
    skip_bad_records: bool = False

    def skipped(self, source: str, stage: Stage) -> int:
        """Records skipped: the days' counts (as their ledger entries say) plus, for export,
        the source's undated ones."""
        days = sum(r.skipped for r in self.results if (r.source, r.stage) == (source, stage))
        return days + (len(self.undated.get(source, [])) if stage is Stage.export else 0)

    @property
    def ok(self) -> bool:
        return not self.failures and (self.skip_bad_records or not any(self.undated.values()))


def run_stages(
    *,
    settings: Settings,
    engine: Engine,
    stages: list[Stage],
    sources: list[str],
    start: date | None = None,
    end: date | None = None,
    exact_days: bool = False,
    skip_bad_records: bool = False,
    allow_shrink: bool = False,
    done_by: str = "cli",
    progress: Progress | None = None,
    held: Held = nothing_held,
) -> RunSummary:
    """Run `stages` in order for each (source, day). With `exact_days`, every day of
    [start, end] runs; otherwise the days the source has data for (or once had). A cell
    `held` names a job for fails with "held by job N" and is not run. Publish never
    empties a day that has published items (the day fails: ShrinkRefused) unless
    `allow_shrink`; fewer items than before are published, as every day asked for is
    one to re-check (a plan's rule, planner.shrinks, with the whole run as its window)."""
    artifacts.check(settings)  # a missing or unreachable bucket: refused before any write
    summary = RunSummary(skip_bad_records=skip_bad_records)
    with Session(engine, expire_on_commit=False) as session:
        ctx = StageContext(
            settings=settings,
            session=session,
            done_by=done_by,
            skip_bad_records=skip_bad_records,
            shrink_guard=None if allow_shrink else ShrinkGuard(date.min),
        )
        work = []
        for source in sources:
            ctx.source(source)  # refresh the scan index before choosing days
            session.commit()
            if Stage.export in stages:
                summary.undated[source] = [
                    f"{p.location}: {p.reason}"
                    for p in scan.source_problems(session, [source])
                    if p.day is None and not p.repaired
                ]
            days = list(_span(start, end)) if exact_days else _days(session, source, start, end)
            ctx.days_ahead[source] = days  # export reads them a batch at a time
            work += [(source, day) for day in days]
        total = len(work) * len(stages)
        done = 0
        try:
            for source, day in work:
                for stage in stages:
                    if progress:
                        progress(done, total, f"{stage} {source} {day}")
                    job_id = held(source, day, stage)
                    outcome = (
                        Failure(stage, source, day, f"{stage} {source} {day}: held by job {job_id}")
                        if job_id is not None
                        else _run_one(ctx, stage, source, day)
                    )
                    done += 1
                    if done % COMMIT_EVERY == 0:
                        session.commit()
                    if isinstance(outcome, Failure):
                        summary.failures.append(outcome)
                        done += len(stages) - stages.index(stage) - 1
                        break  # later stages of this day would read what just failed
                    summary.results.append(outcome)
        finally:
            session.commit()  # days already written keep their ledger rows, whatever stopped us
        if progress:
            progress(done, total, "done")
    return summary


def _run_one(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult | Failure:
    """One cell. A stage raises OperationFailed before it writes to the session (see
    StageContext), so a failure records itself without undoing the days batched before it."""
    try:
        return run_stage(ctx, stage, source, day)
    except OperationFailed as exc:
        ledger.record_failure(
            ctx.session,
            source=source,
            day=day,
            stage=stage,
            error=str(exc),
            done_by=ctx.done_by,
            now=ctx.clock(),
        )
        unreadable = isinstance(exc, UnreadableRecords)
        shrink = isinstance(exc, ShrinkRefused)
        return Failure(stage, source, day, str(exc), unreadable=unreadable, shrink=shrink)


def _days(session: Session, source: str, start: date | None, end: date | None) -> list[date]:
    """Days with data now, and days exported before (their data may have been deleted)."""
    days: set[date] = set()
    for column, table in ((SourceDay.day, SourceDay), (LedgerEntry.day, LedgerEntry)):
        query = select(column).where(table.source == source)
        if start:
            query = query.where(column >= start)
        if end:
            query = query.where(column <= end)
        days |= set(session.scalars(query.distinct()))
    return sorted(days)


def _span(start: date | None, end: date | None) -> Iterator[date]:
    assert start is not None and end is not None
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)
