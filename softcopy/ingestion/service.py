"""The public façade of the ingestion control plane: every face (CLI, HTTP API, dashboard,
notebooks) calls these functions, and nothing else orchestrates.

Functions are keyword-only, take a `Context`, commit one transaction per use case, and
return models or plain values; they never print and know nothing of HTTP or exit codes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine, session_scope, utcnow, within
from softcopy.errors import Conflict, DestructivePlan, Interrupted, NotFound, ReversedRange
from softcopy.ingestion import coverage as coverage_
from softcopy.ingestion import jobs, leases, logs, planner, runtime
from softcopy.ingestion import reconcile as reconcile_
from softcopy.ingestion import verify as verify_
from softcopy.ingestion.coverage import Cell, FutureDays, RecordProblem
from softcopy.ingestion.engines import get_engine as get_step_engine
from softcopy.ingestion.models import (
    Checkpoint,
    CoverageCell,
    CoverageSnapshot,
    IngestionJob,
    IngestionPlan,
    JobStep,
    LogRecord,
    ReconciliationFinding,
    ReconciliationRun,
    Verification,
)
from softcopy.ingestion.states import (
    JOB_RESUMABLE,
    JOB_TERMINAL,
    JobStatus,
    LogLevel,
    PlanMode,
    PlanStatus,
    Stage,
)
from softcopy.ingestion.summary import JobSummary, summarize
from softcopy.ingestion.summary import title as job_title
from softcopy.memory import scan
from softcopy.memory.embedders import get_embedder
from softcopy.memory.sources import open_source

Progress = runtime.Progress


@dataclass
class Context:
    """What every service call needs: settings, the database, and a clock (a parameter, so
    tests can pass their own)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utcnow

    def today(self) -> date:
        return self.clock().astimezone(self.settings.timezone).date()


def open_context(home: Path | str | None = None) -> Context:
    settings = load_settings(home)
    return Context(settings=settings, engine=get_engine(settings.database_url))


@dataclass(frozen=True)
class CoverageReport:
    snapshot: CoverageSnapshot
    cells: list[Cell]
    future_days: list[FutureDays] = field(default_factory=list)  # items dated after today
    problems: list[RecordProblem] = field(default_factory=list)  # records the scan could not read
    problems_total: int = 0  # how many there are; `problems` lists the first PROBLEMS_LISTED


@dataclass(frozen=True)
class PlanView:
    plan: IngestionPlan
    items: list[planner.PlanItem]
    steps: list[tuple[Stage, str, list[date]]]  # what a job with the default chunking runs


@dataclass(frozen=True)
class StepView:
    step: JobStep
    days_done: int


@dataclass(frozen=True)
class JobView:
    job: IngestionJob
    steps: list[StepView]
    verification: Verification | None = None
    # queued, and no worker claimed it within the lease timeout: for this many seconds
    unclaimed_seconds: float | None = None
    summary: JobSummary | None = None  # title, cells done, rate, ETA, failed steps


@dataclass(frozen=True)
class RunOutcome:
    plan: IngestionPlan
    job: JobView | None  # None: the plan had nothing to do
    worker_pid: int | None = None  # set when detached


@dataclass(frozen=True)
class ReconcileReport:
    run: ReconciliationRun
    findings: list[ReconciliationFinding]
    repair_plan: IngestionPlan | None = None
    repair_refused: str | None = None  # why no repair plan was made (it would shrink)


@dataclass
class PlanOptions:
    mode: PlanMode
    sources: list[str] | None = None
    stages: list[Stage] | None = None
    range_start_day: date | None = None
    range_end_day: date | None = None
    lookback_days: int = planner.DEFAULT_LOOKBACK_DAYS
    force: bool = False
    reconciliation_id: int | None = None
    allow_shrink: bool = False  # may the plan remove published items (planner.shrinks)?
    skip_bad_records: bool = False  # its job skips (and counts) unreadable source records


def coverage(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
) -> CoverageReport:
    """Scan the sources (incrementally), compare with the ledger, persist a snapshot."""
    _check_range(range_start_day, range_end_day)
    names = _source_names(ctx, sources)
    _expire_leases(ctx)  # a dead worker's cells are not `running`
    with session_scope(ctx.engine) as session:
        began = time.perf_counter()
        _refresh(ctx, session, names)
        cells = coverage_.compute(
            session, sources=names, start=range_start_day, end=range_end_day, model=_model(ctx)
        )
        snapshot = coverage_.persist(
            session,
            cells=cells,
            sources=names,
            start=range_start_day,
            end=range_end_day,
            now=ctx.clock(),
            seconds=time.perf_counter() - began,
        )
        future = coverage_.future_days(session, sources=names, today=ctx.today())
        problems, total = coverage_.problems(
            session, sources=names, start=range_start_day, end=range_end_day
        )
    return CoverageReport(
        snapshot=snapshot,
        cells=cells,
        future_days=future,
        problems=problems,
        problems_total=total,
    )


def latest_coverage(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
) -> CoverageReport | None:
    """The newest persisted snapshot that spans these sources and days, its cells cut to
    them; nothing is scanned. None when no snapshot spans them (take one with `coverage`)."""
    _check_range(range_start_day, range_end_day)
    names = _source_names(ctx, sources)
    lo, hi = CoverageSnapshot.range_start, CoverageSnapshot.range_end
    spans = [  # an open end of a snapshot spans every day on that side
        lo.is_(None) if range_start_day is None else or_(lo.is_(None), lo <= range_start_day),  # type: ignore[union-attr,operator]
        hi.is_(None) if range_end_day is None else or_(hi.is_(None), hi >= range_end_day),  # type: ignore[union-attr,operator]
    ]
    newest_first = select(CoverageSnapshot).where(*spans).order_by(CoverageSnapshot.id.desc())  # type: ignore[union-attr]
    with Session(ctx.engine) as session:
        snapshots = session.scalars(newest_first.execution_options(yield_per=20))
        found = next((s for s in snapshots if set(names) <= set(s.sources)), None)
        if found is None:
            return None
        columns = [getattr(CoverageCell, f.name) for f in fields(Cell)]
        rows = session.execute(
            select(*columns)
            .where(CoverageCell.snapshot_id == found.id, CoverageCell.source.in_(names))  # type: ignore[attr-defined]
            .where(*within(CoverageCell.day, range_start_day, range_end_day))
            .order_by(CoverageCell.id)  # type: ignore[arg-type]
        )
        future = coverage_.future_days(session, sources=names, today=ctx.today())
        problems, total = coverage_.problems(
            session, sources=names, start=range_start_day, end=range_end_day
        )
        return CoverageReport(
            snapshot=found,
            cells=[Cell(*row) for row in rows],
            future_days=future,
            problems=problems,
            problems_total=total,
        )


def plan(ctx: Context, *, options: PlanOptions) -> PlanView:
    _expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        made = _make_plan(ctx, session, options)
        return _plan_view(session, made)


def get_plan(ctx: Context, *, plan_id: int) -> PlanView:
    with session_scope(ctx.engine) as session:
        found = session.get(IngestionPlan, plan_id)
        if found is None:
            raise NotFound("plan", plan_id)
        return _plan_view(session, found)


def enqueue(
    ctx: Context,
    *,
    plan_id: int | None = None,
    options: PlanOptions | None = None,
    engine: str = "inline",
    chunk_days: int = jobs.DEFAULT_CHUNK_DAYS,
    replan: bool = False,
) -> RunOutcome:
    """Make a queued job from a saved plan (refused when stale, unless `replan`) or from a
    new one; any worker (`softcopy ingestion worker`) can then run it."""
    get_step_engine(engine)  # an unknown engine is refused before anything is written
    _expire_leases(ctx)  # in its own transaction: a refusal below must not undo it
    with session_scope(ctx.engine) as session:
        chosen = _plan_to_run(ctx, session, plan_id, options, replan)
        if chosen.cells == 0:
            return RunOutcome(plan=chosen, job=None)
        job = jobs.create_job(
            session,
            plan=chosen,
            engine=engine,
            chunk_days=chunk_days,
            now=ctx.clock(),
            lease_timeout=ctx.settings.lease_timeout,
        )
    assert job.id is not None
    return RunOutcome(plan=chosen, job=show_job(ctx, job_id=job.id))


def run(
    ctx: Context,
    *,
    plan_id: int | None = None,
    options: PlanOptions | None = None,
    engine: str = "inline",
    chunk_days: int = jobs.DEFAULT_CHUNK_DAYS,
    replan: bool = False,
    detach: bool = False,
    progress: Progress | None = None,
) -> RunOutcome:
    """Enqueue a job, then run it here (with progress), or in a detached worker."""
    queued = enqueue(
        ctx, plan_id=plan_id, options=options, engine=engine, chunk_days=chunk_days, replan=replan
    )
    if queued.job is None:
        return queued
    assert queued.job.job.id is not None
    return RunOutcome(plan=queued.plan, **_execute(ctx, queued.job.job.id, detach, progress))


def resume(
    ctx: Context,
    *,
    job_id: int,
    detach: bool = False,
    skip_bad_records: bool = False,
    progress: Progress | None = None,
) -> JobView:
    """Continue a failed, cancelled or interrupted job from its checkpoints;
    `skip_bad_records` turns that option of its plan on from now on."""
    _expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        _check_resume_shrink(ctx, session, job_id)  # before any write: a refusal leaves none
        if skip_bad_records:
            saved = session.get(IngestionPlan, jobs.get_job(session, job_id).plan_id)
            assert saved is not None
            saved.params = {**saved.params, "skip_bad_records": True}  # a new dict: persisted
            session.add(saved)
        jobs.prepare_resume(
            session, job_id=job_id, now=ctx.clock(), lease_timeout=ctx.settings.lease_timeout
        )
    view = _execute(ctx, job_id, detach, progress)["job"]
    assert view is not None
    return view


def cancel(ctx: Context, *, job_id: int, force: bool = False) -> JobView:
    """Stop a job: a queued one, or one whose worker is gone, at once; a running one at its
    next day boundary (`force`: now, fencing its worker)."""
    with session_scope(ctx.engine) as session:
        jobs.cancel(
            session,
            job_id=job_id,
            force=force,
            now=ctx.clock(),
            lease_timeout=ctx.settings.lease_timeout,
        )
    return show_job(ctx, job_id=job_id)


def verify(ctx: Context, *, job_id: int) -> Verification:
    with session_scope(ctx.engine) as session:
        return verify_.verify_job(session, settings=ctx.settings, job_id=job_id, now=ctx.clock())


def reconcile(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
    repair: bool = False,
) -> ReconcileReport:
    _check_range(range_start_day, range_end_day)
    names = _source_names(ctx, sources)
    with session_scope(ctx.engine) as session:
        run_, _ = reconcile_.reconcile(
            session,
            settings=ctx.settings,
            sources=names,
            start=range_start_day,
            end=range_end_day,
            now=ctx.clock(),
        )
        repair_plan, refused = None, None
        if repair and run_.findings_count:
            try:  # refused before the planner writes anything: the findings are kept
                repair_plan = _make_plan(
                    ctx,
                    session,
                    PlanOptions(mode=PlanMode.repair, sources=names, reconciliation_id=run_.id),
                )
            except DestructivePlan as error:
                refused = str(error)
            else:
                run_.repair_plan_id = repair_plan.id
                session.add(run_)
        assert run_.id is not None
        return ReconcileReport(run_, reconcile_.findings_of(session, run_.id), repair_plan, refused)


def get_reconciliation(ctx: Context, *, reconciliation_id: int) -> ReconcileReport:
    with session_scope(ctx.engine) as session:
        found = session.get(ReconciliationRun, reconciliation_id)
        if found is None:
            raise NotFound("reconciliation", reconciliation_id)
        plan_ = session.get(IngestionPlan, found.repair_plan_id) if found.repair_plan_id else None
        return ReconcileReport(found, reconcile_.findings_of(session, reconciliation_id), plan_)


def list_plans(
    ctx: Context, *, status: PlanStatus | None = None, limit: int = 20, offset: int = 0
) -> list[IngestionPlan]:
    """Saved plans, newest first (their items: `get_plan`)."""
    return _newest(ctx, IngestionPlan, status, limit, offset)


def list_jobs(
    ctx: Context, *, status: JobStatus | None = None, limit: int = 20, offset: int = 0
) -> list[IngestionJob]:
    """Jobs, newest first (`leases.unclaimed_for` tells which queued ones wait in vain)."""
    _expire_leases(ctx)
    return _newest(ctx, IngestionJob, status, limit, offset)


Listed = TypeVar("Listed", IngestionPlan, IngestionJob)


def _newest(
    ctx: Context, model: type[Listed], status: StrEnum | None, limit: int, offset: int
) -> list[Listed]:
    with Session(ctx.engine) as session:
        query = select(model)
        if status is not None:
            query = query.where(model.status == status)
        query = query.order_by(model.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
        return list(session.scalars(query))


def show_job(ctx: Context, *, job_id: int) -> JobView:
    _expire_leases(ctx)
    with Session(ctx.engine) as session:
        job = jobs.get_job(session, job_id)
        done = dict(
            session.execute(
                select(Checkpoint.step_id, func.count())
                .where(Checkpoint.job_id == job_id)
                .group_by(Checkpoint.step_id)
            ).all()
        )
        verification = session.scalar(
            select(Verification)
            .where(Verification.job_id == job_id)
            .order_by(Verification.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
        steps = [StepView(s, done.get(s.id, 0)) for s in jobs.steps_of(session, job_id)]
        now = ctx.clock()
        waited = leases.unclaimed_for(job, now=now, timeout=ctx.settings.lease_timeout)
        plan_ = session.get(IngestionPlan, job.plan_id)
        assert plan_ is not None
        named = job_title(
            mode=plan_.mode,
            params=plan_.params,
            sources_all=list(ctx.settings.sources),
            first_day=min((v.step.start_day for v in steps), default=None),
            last_day=max((v.step.end_day for v in steps), default=None),
        )
        return JobView(
            job=job,
            steps=steps,
            verification=verification,
            unclaimed_seconds=waited,
            summary=summarize(job, [(v.step, v.days_done) for v in steps], title=named, now=now),
        )


def job_logs(
    ctx: Context,
    *,
    job_id: int,
    after_id: int = 0,
    level: LogLevel | None = None,
    step: int | None = None,
    source: str | None = None,
    day: date | None = None,
    limit: int = 500,
) -> list[LogRecord]:
    """A job's rows after `after_id`, oldest first (a poller's next page), filtered; `step`
    is the step's number in its job (its ordinal)."""
    _expire_leases(ctx)
    with Session(ctx.engine) as session:
        jobs.get_job(session, job_id)
        where = _log_filter(session, job_id, level, step, source, day)
        return logs.query(session, job_id=job_id, after_id=after_id, limit=limit, where=where)


@dataclass(frozen=True)
class LogPage:
    records: list[LogRecord]  # oldest first
    total: int  # how many rows match the filters, in all
    older: int  # how many matching rows are older than the first of `records`


def log_tail(
    ctx: Context,
    *,
    job_id: int,
    level: LogLevel | None = None,
    step: int | None = None,
    source: str | None = None,
    day: date | None = None,
    before_id: int | None = None,
    page: int = 1,
    limit: int = 200,
) -> LogPage:
    """A job's newest rows, filtered: the `page`-th `limit` of them counting back from the
    newest (or from `before_id`, exclusive), oldest first, with how many there are."""
    _expire_leases(ctx)
    with Session(ctx.engine) as session:
        jobs.get_job(session, job_id)
        where = _log_filter(session, job_id, level, step, source, day)
        records = logs.newest(
            session,
            job_id=job_id,
            where=where,
            before_id=before_id,
            offset=(page - 1) * limit,
            limit=limit,
        )
        total = logs.count(session, job_id=job_id, where=where)
        first = records[0].id if records else before_id
        older = logs.count(session, job_id=job_id, where=where, before_id=first) if first else 0
    return LogPage(records=records, total=total, older=older if records else 0)


def _log_filter(
    session: Session,
    job_id: int,
    level: LogLevel | None,
    step: int | None,
    source: str | None,
    day: date | None,
) -> logs.LogFilter:
    step_id = None
    if step is not None:
        step_id = session.scalar(
            select(JobStep.id).where(JobStep.job_id == job_id, JobStep.ordinal == step)
        )
        if step_id is None:
            raise NotFound("step", f"{step} of job {job_id}")
    return logs.LogFilter(level=level, step_id=step_id, source=source, day=day)


def follow_logs(
    ctx: Context,
    *,
    job_id: int,
    level: LogLevel | None = None,
    step: int | None = None,
    source: str | None = None,
    day: date | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[LogRecord]:
    """Yield a job's log rows as they are written, until the job has ended (interrupted
    included: a dead worker's lease expires here too)."""
    after = 0
    with Session(ctx.engine) as session:
        jobs.get_job(session, job_id)
        where = _log_filter(session, job_id, level, step, source, day)
    while True:
        _expire_leases(ctx)
        with Session(ctx.engine) as session:
            status = jobs.get_job(session, job_id).status
            rows = logs.query(session, job_id=job_id, after_id=after, where=where)
        for row in rows:
            assert row.id is not None
            after = row.id
            yield row
        if not rows and status in JOB_TERMINAL:
            return
        if not rows:
            time.sleep(poll_seconds)


def held_cells(ctx: Context, *, sources: list[str]) -> Callable[[str, date, Stage], int | None]:
    """Which live job holds a cell (source, day, stage), as the legacy in-process runner
    (`memory.runner.run_stages(held=...)`) asks: the stage primitives leave such cells to
    their job. Read once, now."""
    with Session(ctx.engine) as session:
        held = jobs.held_cells(session, sources)

    def holder(source: str, day: date, stage: Stage) -> int | None:
        return held.get((source, day, stage))

    return holder


def step_checkpoints(
    ctx: Context, *, job_id: int, step_id: int
) -> tuple[JobStep, list[Checkpoint]]:
    """A step of a job and its checkpoints in the order they were written (what a step
    notebook's summary shows)."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        step = session.get(JobStep, step_id)
        if step is None or step.job_id != job_id:
            raise NotFound("step", f"{step_id} of job {job_id}")
        checkpoints = list(
            session.scalars(
                select(Checkpoint)
                .where(Checkpoint.step_id == step_id)
                .order_by(Checkpoint.created_at, Checkpoint.id)  # type: ignore[arg-type]
            )
        )
    return step, checkpoints


def step_notebook(ctx: Context, *, job_id: int, step_id: int) -> bytes:
    """The executed notebook a notebook executor kept for a step, read only when it
    resolves to a file inside the home."""
    view = show_job(ctx, job_id=job_id)
    step = next((s.step for s in view.steps if s.step.id == step_id), None)
    if step is None:
        raise NotFound("step", f"{step_id} of job {job_id}")
    home = ctx.settings.home.resolve()
    path = (home / step.artifact).resolve() if step.artifact else None
    if path is None or not path.is_relative_to(home) or not path.is_file():
        raise NotFound("notebook of step", step_id)
    return path.read_bytes()


def work(
    ctx: Context, *, once: bool, job_id: int | None = None, idle_seconds: float = 1.0
) -> list[int]:
    """Be a worker: claim queued jobs and run them (one with `once`); the job ids run."""
    owner = runtime.new_owner()
    ran: list[int] = []
    while True:
        _expire_leases(ctx)
        claimed = runtime.claim(ctx.settings, owner=owner, job_id=job_id, now=ctx.clock())
        if claimed is not None:
            _run_claimed(ctx, *claimed, progress=None)
            ran.append(claimed[0])
        if once or job_id is not None:
            return ran
        if claimed is None:
            time.sleep(idle_seconds)


def _execute(ctx: Context, job_id: int, detach: bool, progress: Progress | None) -> dict:  # type: ignore[type-arg]
    if detach:
        pid = spawn_worker(ctx, job_id)
        return {"job": show_job(ctx, job_id=job_id), "worker_pid": pid}
    claimed = runtime.claim(ctx.settings, owner=runtime.new_owner(), job_id=job_id, now=ctx.clock())
    if claimed is not None:
        try:
            _run_claimed(ctx, *claimed, progress=progress)
        except KeyboardInterrupt:  # the runtime left the job cancelled, checkpoints kept
            summary = show_job(ctx, job_id=job_id).summary
            assert summary is not None
            raise Interrupted(job_id, summary.cells_done, summary.cells_total) from None
    return {"job": show_job(ctx, job_id=job_id)}


def _run_claimed(ctx: Context, job_id: int, epoch: int, *, progress: Progress | None) -> None:
    with Session(ctx.engine) as session:
        engine_name = jobs.get_job(session, job_id).engine
    step_engine = get_step_engine(engine_name)
    try:
        runtime.execute(
            ctx.settings,
            job_id=job_id,
            epoch=epoch,
            step_engine=step_engine,
            clock=ctx.clock,
            progress=progress,
        )
    finally:
        step_engine.close()  # e.g. the notebook engine's warm kernel


def spawn_worker(ctx: Context, job_id: int) -> int:
    """A worker in its own process session: it survives the terminal that started it."""
    log_dir = ctx.settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"worker-job-{job_id}.log").open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "softcopy",
                "ingestion",
                "worker",
                "--job-id",
                str(job_id),
                "--home",
                str(ctx.settings.home),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | {"SOFTCOPY_DATABASE_URL": ctx.settings.database_url},
        )
    return process.pid


def _plan_to_run(
    ctx: Context,
    session: Session,
    plan_id: int | None,
    options: PlanOptions | None,
    replan: bool,
) -> IngestionPlan:
    if plan_id is None:
        assert options is not None, "run needs a plan id or plan options"
        return _make_plan(ctx, session, options)
    saved = session.get(IngestionPlan, plan_id)
    if saved is None:
        raise NotFound("plan", plan_id)
    if saved.status is not PlanStatus.ready:
        raise Conflict(f"plan {plan_id} was already run; make a new plan")
    items = planner.plan_items(session, plan_id)
    _refresh(ctx, session, sorted({i.source for i in items}))
    if replan:
        return _make_plan(ctx, session, _options_of(saved))
    planner.check_current(session, plan=saved, model=_model(ctx))
    return saved


def _make_plan(ctx: Context, session: Session, options: PlanOptions) -> IngestionPlan:
    names = _source_names(ctx, options.sources)
    _refresh(ctx, session, names)
    made, _ = planner.make_plan(
        session,
        request=planner.PlanRequest(
            mode=options.mode,
            sources=names,
            stages=options.stages or list(Stage),
            range_start_day=options.range_start_day,
            range_end_day=options.range_end_day,
            lookback_days=options.lookback_days,
            force=options.force,
            reconciliation_id=options.reconciliation_id,
            allow_shrink=options.allow_shrink,
            skip_bad_records=options.skip_bad_records,
        ),
        model=_model(ctx),
        today=ctx.today(),
        now=ctx.clock(),
    )
    return made


def _check_resume_shrink(ctx: Context, session: Session, job_id: int) -> None:
    """The job's remaining cells must not shrink published days its plan did not allow to."""
    job = jobs.get_job(session, job_id)
    if job.status not in JOB_RESUMABLE:
        return  # prepare_resume says why it cannot be resumed
    saved = session.get(IngestionPlan, job.plan_id)
    assert saved is not None
    done = {
        (source, day, Stage(stage))
        for source, day, stage in session.execute(
            select(Checkpoint.source, Checkpoint.day, Checkpoint.stage).where(
                Checkpoint.job_id == job_id
            )
        )
    }
    _refresh(ctx, session, sorted({i.source for i in planner.plan_items(session, job.plan_id)}))
    planner.check_resume(session, plan=saved, done=done, model=_model(ctx), today=ctx.today())


def _options_of(saved: IngestionPlan) -> PlanOptions:
    p = saved.params
    return PlanOptions(
        mode=saved.mode,
        sources=p.get("sources"),
        stages=[Stage(s) for s in p.get("stages", [])] or None,
        range_start_day=date.fromisoformat(p["range_start_day"])
        if p.get("range_start_day")
        else None,
        range_end_day=date.fromisoformat(p["range_end_day"]) if p.get("range_end_day") else None,
        lookback_days=p.get("lookback_days", planner.DEFAULT_LOOKBACK_DAYS),
        force=p.get("force", False),
        reconciliation_id=p.get("reconciliation_id"),
        allow_shrink=p.get("allow_shrink", False),
        skip_bad_records=p.get("skip_bad_records", False),
    )


def _plan_view(session: Session, made: IngestionPlan) -> PlanView:
    assert made.id is not None
    items = planner.plan_items(session, made.id)
    return PlanView(plan=made, items=items, steps=jobs.split_steps(items, jobs.DEFAULT_CHUNK_DAYS))


def _expire_leases(ctx: Context) -> list[int]:
    """End jobs whose worker is gone, in a transaction of its own (see jobs.expire_leases)."""
    with session_scope(ctx.engine) as session:
        return jobs.expire_leases(session, now=ctx.clock(), timeout=ctx.settings.lease_timeout)


def _refresh(ctx: Context, session: Session, names: list[str]) -> None:
    for name in names:
        scan.refresh(session, open_source(ctx.settings.source(name), ctx.settings.timezone))


def _source_names(ctx: Context, sources: list[str] | None) -> list[str]:
    return [s.name for s in ctx.settings.selected_sources(sources)]


def _model(ctx: Context) -> str:
    return get_embedder(ctx.settings.embedder).name


def _check_range(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise ReversedRange(start, end)
