"""What the control plane's unit tests share (test_jobs, test_leases, test_runtime,
test_verify, test_reconcile): an injected clock, plans made by hand, a stage runner that
only counts, and a small real job run through the control plane's own modules (planner,
jobs, leases, runtime) rather than the service, so a failure points at a module."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import session_scope
from softcopy.ingestion import jobs, leases, planner, runtime
from softcopy.ingestion.executors import InlineExecutor
from softcopy.ingestion.models import (
    CellClaim,
    Checkpoint,
    IngestionJob,
    IngestionPlan,
    IngestionPlanItem,
    JobStep,
)
from softcopy.ingestion.states import CellState, JobStatus, PlanMode, PlanStatus, Stage
from softcopy.memory import artifacts, scan
from softcopy.memory.embedders import get_embedder
from softcopy.memory.sources import open_source
from softcopy.memory.stage import StageContext, StageResult
from tests.conftest import DEMO_TODAY

Cell = tuple[str, date, Stage]
DAY1 = date(2026, 3, 2)


class Clock:
    """The injected clock: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def cells(
    source: str, days: int, stages: Iterable[Stage] = Stage, first: date = DAY1
) -> list[Cell]:
    """Every `stages` cell of `days` consecutive days of `source` from `first`."""
    return [(source, first + timedelta(days=n), stage) for n in range(days) for stage in stages]


def hand_plan(session: Session, wanted: list[Cell], now: datetime) -> IngestionPlan:
    """A ready backfill plan of exactly these cells, written as the planner would."""
    plan = IngestionPlan(
        created_at=now, mode=PlanMode.backfill_range, status=PlanStatus.ready, fingerprint="f"
    )
    plan.cells = len(wanted)
    session.add(plan)
    session.flush()
    for source, day, stage in wanted:
        session.add(
            IngestionPlanItem(
                plan_id=plan.id, source=source, day=day, stage=stage, state=CellState.missing
            )
        )
    session.flush()
    return plan


def queue_job(
    engine: Engine, wanted: list[Cell], clock: Clock, *, chunk_days: int = 7, timeout: float = 60
) -> int:
    """A queued job of these cells (jobs.create_job on a hand-made plan), committed."""
    with session_scope(engine) as session:
        job = jobs.create_job(
            session,
            plan=hand_plan(session, wanted, clock()),
            executor="inline",
            chunk_days=chunk_days,
            now=clock(),
            lease_timeout=timeout,
        )
        assert job.id is not None
        return job.id


def claimed_job(settings: Settings, engine: Engine, wanted: list[Cell], clock: Clock) -> int:
    """A job of these cells that this process took the lease of (epoch 1)."""
    job_id = queue_job(engine, wanted, clock, timeout=settings.lease_timeout)
    assert leases.claim(settings, owner="test", job_id=job_id, now=clock()) == (job_id, 1)
    return job_id


def job_row(engine: Engine, job_id: int) -> IngestionJob:
    with Session(engine, expire_on_commit=False) as session:
        return jobs.get_job(session, job_id)


def steps_of(engine: Engine, job_id: int) -> list[JobStep]:
    with Session(engine, expire_on_commit=False) as session:
        return jobs.steps_of(session, job_id)


def claimed_cells(engine: Engine, job_id: int) -> set[Cell]:
    with Session(engine) as session:
        rows = session.execute(
            select(CellClaim.source, CellClaim.day, CellClaim.stage).where(
                CellClaim.job_id == job_id
            )
        )
        return {(source, day, Stage(stage)) for source, day, stage in rows}


def checkpoints(engine: Engine, job_id: int) -> list[Checkpoint]:
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.id)
            )
        )


def count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


@dataclass
class CountingRunner:
    """A stage runner stand-in: records each cell it is asked for and returns a result with
    digests named after the cell, writing nothing (the stages are memory's to test)."""

    calls: list[Cell] = field(default_factory=list)

    def __call__(self, ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        self.calls.append((source, day, stage))
        return result_for(stage, source, day)


def result_for(stage: Stage, source: str, day: date) -> StageResult:
    return StageResult(
        stage=stage,
        source=source,
        day=day,
        items=day.day,
        skipped=0,
        input_digest=f"in-{stage}-{day}",
        output_digest=f"out-{stage}-{day}",
    )


def published(
    settings: Settings, engine: Engine, clock: Clock, *, source: str, start: date, end: date
) -> int:
    """Back `source` up from `start` to `end` with the real stages, through the planner, a
    job, its lease and the runtime (no service): the succeeded job's id."""
    with session_scope(engine) as session:
        scan.refresh(session, open_source(settings.source(source), settings.timezone))
        made = planner.make_plan(
            session,
            request=planner.PlanRequest(
                mode=PlanMode.backfill_range,
                sources=[source],
                stages=list(Stage),
                range_start_day=start,
                range_end_day=end,
            ),
            model=get_embedder(settings.embedder).name,
            today=DEMO_TODAY,
            now=clock(),
            present=partial(artifacts.present_days, settings),
        )
        job = jobs.create_job(
            session,
            plan=made.plan,
            executor="inline",
            chunk_days=jobs.DEFAULT_CHUNK_DAYS,
            now=clock(),
            lease_timeout=settings.lease_timeout,
        )
        job_id = job.id
    assert job_id is not None
    claimed = leases.claim(settings, owner="test", job_id=job_id, now=clock())
    assert claimed is not None
    ended = runtime.execute(
        settings, job_id=job_id, epoch=claimed[1], executor=InlineExecutor(), clock=clock
    )
    assert ended is JobStatus.succeeded
    return job_id
