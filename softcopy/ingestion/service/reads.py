"""Use cases that read jobs: lists, one job, its logs, its step checkpoints and notebooks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from softcopy.errors import NotFound
from softcopy.ingestion import jobs, leases, logs
from softcopy.ingestion.models import (
    Checkpoint,
    IngestionJob,
    IngestionPlan,
    JobStep,
    LogRecord,
    ReconciliationRun,
    Verification,
)
from softcopy.ingestion.service.context import Context, expire_leases, newest
from softcopy.ingestion.service.plans import get_reconciliation
from softcopy.ingestion.service.views import JobView, LiveCell, LogPage, ReconcileReport, StepView
from softcopy.ingestion.states import (
    JOB_LIVE,
    JOB_TERMINAL,
    JobStatus,
    LogLevel,
    Stage,
    StepStatus,
)
from softcopy.ingestion.summary import JobSummary, summarize
from softcopy.ingestion.summary import title as job_title
from softcopy.serialize import jsonable


def list_jobs(
    ctx: Context, *, status: JobStatus | None = None, limit: int = 20, offset: int = 0
) -> list[IngestionJob]:
    """Jobs, newest first (`leases.unclaimed_for` tells which queued ones wait in vain)."""
    expire_leases(ctx)
    return newest(ctx, IngestionJob, status, limit, offset)


def listed_jobs(
    ctx: Context, *, status: JobStatus | None = None, limit: int = 20, offset: int = 0
) -> list[dict[str, Any]]:
    """`list_jobs` as the faces list them (the API's GET /jobs, `ingestion jobs --json`):
    each job's fields plus `unclaimed_seconds`, as a job's own view has it: how long a
    queued job has waited for a worker past the lease timeout (`leases.unclaimed_for`);
    None otherwise."""
    rows = list_jobs(ctx, status=status, limit=limit, offset=offset)
    now, timeout = ctx.clock(), ctx.settings.lease_timeout
    return [
        {**jsonable(job), "unclaimed_seconds": leases.unclaimed_for(job, now=now, timeout=timeout)}
        for job in rows
    ]


def show_job(ctx: Context, *, job_id: int) -> JobView:
    expire_leases(ctx)
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
    expire_leases(ctx)
    with Session(ctx.engine) as session:
        jobs.get_job(session, job_id)
        where = _log_filter(session, job_id, level, step, source, day)
        return logs.query(session, job_id=job_id, after_id=after_id, limit=limit, where=where)


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
    expire_leases(ctx)
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
    included: a dead worker's lease expires here too), or while it waits in the queue
    longer than a worker would take to claim it (nothing will be written until one does;
    `show_job` then says how long it has waited)."""
    after = 0
    with Session(ctx.engine) as session:
        jobs.get_job(session, job_id)
        where = _log_filter(session, job_id, level, step, source, day)
    while True:
        expire_leases(ctx)
        with Session(ctx.engine) as session:
            job = jobs.get_job(session, job_id)
            rows = logs.query(session, job_id=job_id, after_id=after, where=where)
        for row in rows:
            assert row.id is not None
            after = row.id
            yield row
        unclaimed = leases.unclaimed_for(job, now=ctx.clock(), timeout=ctx.settings.lease_timeout)
        if not rows and (job.status in JOB_TERMINAL or unclaimed):
            return
        if not rows:
            time.sleep(poll_seconds)


def job_summaries(ctx: Context, *, jobs: list[IngestionJob]) -> dict[int, JobSummary]:
    """Each job's summary (title, cells, elapsed, rate, ETA) for a list of jobs, from their
    rows, plans and first and last days: three queries however many jobs (no step rows)."""
    ids = [j.id for j in jobs if j.id is not None]
    if not ids:
        return {}
    with Session(ctx.engine) as session:
        plans = {
            p.id: p
            for p in session.scalars(
                select(IngestionPlan).where(
                    IngestionPlan.id.in_({j.plan_id for j in jobs})  # type: ignore[union-attr]
                )
            )
        }
        spans = {
            job_id: (first, last)
            for job_id, first, last in session.execute(
                select(JobStep.job_id, func.min(JobStep.start_day), func.max(JobStep.end_day))
                .where(JobStep.job_id.in_(ids))  # type: ignore[attr-defined]
                .group_by(JobStep.job_id)
            )
        }
    now = ctx.clock()
    out: dict[int, JobSummary] = {}
    for job in jobs:
        assert job.id is not None
        plan_ = plans[job.plan_id]
        first, last = spans.get(job.id, (None, None))
        named = job_title(
            mode=plan_.mode,
            params=plan_.params,
            sources_all=list(ctx.settings.sources),
            first_day=first,
            last_day=last,
        )
        out[job.id] = summarize(job, [], title=named, now=now)
    return out


def step_notebook_html(ctx: Context, *, job_id: int, step_id: int) -> str:
    """The step's executed notebook as one HTML page (nbconvert's lab template), for a face
    to show it instead of handing out the .ipynb."""
    # deferred: nbconvert takes seconds to import, and no other read needs it
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.reads(step_notebook(ctx, job_id=job_id, step_id=step_id), as_version=4)
    page, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    return page


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


def live_cells(
    ctx: Context, *, sources: list[str] | None = None
) -> dict[tuple[str, date, Stage], LiveCell]:
    """The cells live jobs hold, read from persisted rows (steps and checkpoints; nothing
    is scanned): each with its job, its step's status and whether its checkpoint landed.
    The dashboard polls this to draw a running backfill as it goes."""
    expire_leases(ctx)
    live = select(IngestionJob.id).where(IngestionJob.status.in_(JOB_LIVE))  # type: ignore[union-attr]
    steps = select(JobStep.job_id, JobStep.source, JobStep.stage, JobStep.days, JobStep.status)
    steps = steps.where(JobStep.job_id.in_(live))  # type: ignore[attr-defined]
    landed = select(Checkpoint.source, Checkpoint.day, Checkpoint.stage)
    landed = landed.where(Checkpoint.job_id.in_(live))  # type: ignore[attr-defined]
    if sources is not None:
        steps = steps.where(JobStep.source.in_(sources))  # type: ignore[attr-defined]
        landed = landed.where(Checkpoint.source.in_(sources))  # type: ignore[attr-defined]
    with Session(ctx.engine) as session:
        done = {(s, d, Stage(st)) for s, d, st in session.execute(landed)}
        out: dict[tuple[str, date, Stage], LiveCell] = {}
        for job_id, source, stage, days, status in session.execute(steps):
            for day in days:
                key = (source, date.fromisoformat(day), Stage(stage))
                out[key] = LiveCell(job_id, StepStatus(status), key in done)
    return out


def latest_reconciliation(ctx: Context) -> ReconcileReport | None:
    """The newest reconciliation with its findings (None before the first)."""
    with Session(ctx.engine) as session:
        newest_id = session.scalar(select(func.max(ReconciliationRun.id)))
    if newest_id is None:
        return None
    return get_reconciliation(ctx, reconciliation_id=newest_id)
