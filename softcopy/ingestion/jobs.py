"""Jobs as persisted state: made from a plan, split into steps, holding their cells;
cancelled, fenced, expired and resumed. The worker side is in runtime.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlmodel import Session

from softcopy import limits
from softcopy.db import dialect_insert
from softcopy.errors import Conflict, NotFound
from softcopy.ingestion import leases, logs, planner
from softcopy.ingestion.models import (
    CellClaim,
    Checkpoint,
    IngestionJob,
    IngestionPlan,
    IngestionPlanItem,
    JobStep,
)
from softcopy.ingestion.states import (
    JOB_LEASED,
    JOB_LIVE,
    JOB_RESUMABLE,
    STEP_DONE,
    JobStatus,
    PlanStatus,
    Stage,
    StepStatus,
)
from softcopy.ingestion.transitions import IllegalTransition, LeaseLost, move_job, move_step

DEFAULT_CHUNK_DAYS = 30


def get_job(session: Session, job_id: int) -> IngestionJob:
    job = session.get(IngestionJob, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def steps_of(session: Session, job_id: int) -> list[JobStep]:
    return list(
        session.scalars(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.ordinal))
    )


def create_job(
    session: Session,
    *,
    plan: IngestionPlan,
    executor: str,
    chunk_days: int,
    now: datetime,
    lease_timeout: float,
) -> IngestionJob:
    """A queued job for the plan's cells, its steps, and its claim on every cell (taking
    cells from queued jobs no worker claimed within `lease_timeout`)."""
    assert plan.id is not None
    if plan.status is not PlanStatus.ready:
        raise Conflict(f"plan {plan.id} was already run; make a new plan")
    limits.CHUNK_DAYS.check(chunk_days)
    items = planner.plan_items(session, plan.id)
    job = IngestionJob(
        plan_id=plan.id,
        status=JobStatus.queued,
        executor=executor,
        chunk_days=chunk_days,
        created_at=now,
        queued_at=now,
        cells_total=len(items),
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    cells = [(i.source, i.day, i.stage) for i in items]
    _claim_cells(session, job.id, cells, now=now, lease_timeout=lease_timeout)
    for ordinal, (stage, source, days) in enumerate(split_steps(items, chunk_days)):
        session.add(
            JobStep(
                job_id=job.id,
                ordinal=ordinal,
                stage=stage,
                source=source,
                start_day=days[0],
                end_day=days[-1],
                days=[d.isoformat() for d in days],
                status=StepStatus.pending,
            )
        )
    plan.status = PlanStatus.applied
    session.add(plan)
    logs.write(
        session,
        event="job.created",
        message=f"job {job.id} queued from plan {plan.id}: {len(items)} cells",
        now=now,
        job_id=job.id,
        plan_id=plan.id,
        executor=executor,
    )
    return job


def cancel(
    session: Session, *, job_id: int, force: bool, now: datetime, lease_timeout: float
) -> IngestionJob:
    """A queued job cancels at once, and so does a leased one whose worker is gone; a
    running one at its next day boundary, or now with `force`, which also signals the
    worker (only if host, pid and start time prove it is that process) and fences it."""
    job = get_job(session, job_id)
    if job.status is JobStatus.queued:
        move_job(session, job, JobStatus.cancelled, now=now)
        _close(session, job, now)
        return job
    if job.status not in JOB_LEASED:
        raise Conflict(
            f"job {job_id} is {job.status}; only queued or running jobs can be cancelled"
        )
    gone = _why_gone(job, leases.deadline(now, lease_timeout))
    if gone is None and not force:
        if job.status is JobStatus.running:
            move_job(session, job, JobStatus.cancelling, now=now, cancel_requested=True)
        return job
    if gone is None:
        leases.signal_worker(job)
    error = "cancelled by force" if gone is None else f"cancelled at once: {gone}"
    move_job(
        session,
        job,
        JobStatus.cancelled,
        now=now,
        epoch=job.lease_epoch,
        error=error,
        lease_epoch=job.lease_epoch + 1,  # fenced in the same UPDATE
        cancel_requested=True,
    )
    _close(session, job, now)
    return job


def expire_leases(session: Session, *, now: datetime, timeout: float) -> list[int]:
    """End every leased job whose worker is gone: its heartbeat is older than `timeout`, or
    (on this host) its process no longer exists. A running job becomes interrupted, a
    cancelling one cancelled (as asked); either way the old lease is fenced and the claims
    released. Cheap when nothing expired: one indexed read of the few leased jobs.

    Every service path that reads or claims job state calls this first, so no face ever
    shows (or waits on) a live job whose worker is gone."""
    before = leases.deadline(now, timeout)
    ended = []
    for job in session.scalars(select(IngestionJob).where(IngestionJob.status.in_(JOB_LEASED))):  # type: ignore[attr-defined]
        reason = _why_gone(job, before)
        if reason is None:
            continue
        to = JobStatus.cancelled if job.status is JobStatus.cancelling else JobStatus.interrupted
        try:
            move_job(
                session,
                job,
                to,
                now=now,
                epoch=job.lease_epoch,
                error=reason,
                # a heartbeat that lands meanwhile wins: the worker is alive after all
                stale_before=before if leases.lease_expired(job, before) else None,
                lease_epoch=job.lease_epoch + 1,
            )
        except (IllegalTransition, LeaseLost):
            continue  # it heartbeated, or another reader ended it first
        _close(session, job, now)
        assert job.id is not None
        ended.append(job.id)
    return ended


def unclaimed_jobs(
    session: Session, *, now: datetime, timeout: float
) -> list[tuple[IngestionJob, float]]:
    """Queued jobs no worker claimed within the lease timeout, with how long they waited."""
    waiting = session.scalars(select(IngestionJob).where(IngestionJob.status == JobStatus.queued))
    found = [(job, leases.unclaimed_for(job, now=now, timeout=timeout)) for job in waiting]
    return [(job, seconds) for job, seconds in found if seconds is not None]


def _why_gone(job: IngestionJob, before: datetime) -> str | None:
    if leases.lease_expired(job, before):
        return "lease expired (the worker stopped heartbeating)"
    if leases.worker_is_gone(job):
        return f"worker process {job.worker_pid} is gone"
    return None


def prepare_resume(
    session: Session, *, job_id: int, now: datetime, lease_timeout: float
) -> IngestionJob:
    """Put a failed, cancelled or interrupted job back in the queue, claiming its cells."""
    job = get_job(session, job_id)
    if job.status not in JOB_RESUMABLE:
        hint = " (it already finished)" if job.status is JobStatus.succeeded else ""
        raise Conflict(
            f"job {job_id} is {job.status}{hint}; only failed, cancelled or "
            "interrupted jobs can be resumed"
        )
    assert job.id is not None
    done = checkpointed_cells(session, job.id)
    todo = [
        (step.source, date.fromisoformat(d), step.stage)
        for step in steps_of(session, job.id)
        for d in step.days
        if (step.source, date.fromisoformat(d), step.stage) not in done
    ]
    _claim_cells(session, job.id, todo, now=now, lease_timeout=lease_timeout)
    for step in steps_of(session, job.id):
        if step.status not in STEP_DONE and step.status is not StepStatus.pending:
            move_step(session, step, StepStatus.pending, now=now)
    move_job(session, job, JobStatus.queued, now=now)
    return job


def checkpointed_cells(session: Session, job_id: int) -> set[tuple[str, date, Stage]]:
    return {
        (source, day, Stage(stage))
        for source, day, stage in session.execute(
            select(Checkpoint.source, Checkpoint.day, Checkpoint.stage).where(
                Checkpoint.job_id == job_id
            )
        )
    }


def release_claims(session: Session, job_id: int) -> None:
    session.execute(delete(CellClaim).where(CellClaim.job_id == job_id))


def finish_steps(session: Session, job: IngestionJob, to: StepStatus, now: datetime) -> None:
    """Mark every unfinished step `to` (cancelled), as the job stops."""
    assert job.id is not None
    for step in steps_of(session, job.id):
        if step.status in (StepStatus.pending, StepStatus.running):
            move_step(session, step, to, now=now)


def _close(session: Session, job: IngestionJob, now: datetime) -> None:
    assert job.id is not None
    if job.status is JobStatus.cancelled:
        finish_steps(session, job, StepStatus.cancelled, now)
    release_claims(session, job.id)


def _claim_cells(
    session: Session,
    job_id: int,
    cells: list[tuple[str, date, Stage]],
    *,
    now: datetime,
    lease_timeout: float,
) -> None:
    """Claim cells for a job, refusing (and naming the holder) when a live job has any.

    A queued job that no worker claimed within the lease timeout does not block: it gives
    up its cells (it becomes interrupted, resumable) rather than hold them forever."""
    by_source: dict[str, list[date]] = defaultdict(list)
    for source, day, _ in cells:
        by_source[source].append(day)
    wanted = set(cells)
    holders: dict[int, IngestionJob] = {}
    for source, days in by_source.items():
        held = session.execute(
            select(CellClaim, IngestionJob)
            .join(IngestionJob, IngestionJob.id == CellClaim.job_id)  # type: ignore[arg-type]
            .where(
                CellClaim.source == source, CellClaim.day >= min(days), CellClaim.day <= max(days)
            )
        ).all()
        for claim, holder in held:
            if (claim.source, claim.day, claim.stage) not in wanted:
                continue
            if holder.status not in JOB_LIVE:
                continue
            if leases.unclaimed_for(holder, now=now, timeout=lease_timeout) is None:
                raise _held(claim, holder.status)
            holders[claim.job_id] = holder
    for holder in holders.values():
        _give_up_cells(session, holder, taker=f"job {job_id}", now=now, lease_timeout=lease_timeout)
    rows = [{"source": s, "day": d, "stage": st, "job_id": job_id} for s, d, st in cells]
    # No savepoint: on SQLite, pysqlite's SAVEPOINT as a transaction's first write commits
    # on RELEASE, so a use case that failed later would leave its claims behind. A claim a
    # concurrent job won is skipped here and counted below; the refusal rolls back the rest.
    table = CellClaim.__table__  # type: ignore[attr-defined]
    claim = dialect_insert(session.get_bind(), table).on_conflict_do_nothing()
    for begin in range(0, len(rows), 2000):
        session.execute(claim, rows[begin : begin + 2000])
    ours = session.scalar(
        select(func.count()).select_from(CellClaim).where(CellClaim.job_id == job_id)
    )
    if ours != len(rows):
        raise Conflict(
            f"job {job_id}: another job claimed some of these cells a moment ago; "
            "the running jobs show which"
        )


def held_cells(session: Session, sources: list[str]) -> dict[tuple[str, date, Stage], int]:
    """The cells of `sources` a live job holds, with the job's id."""
    rows = session.execute(
        select(CellClaim.source, CellClaim.day, CellClaim.stage, CellClaim.job_id)
        .join(IngestionJob, IngestionJob.id == CellClaim.job_id)  # type: ignore[arg-type]
        .where(CellClaim.source.in_(sources), IngestionJob.status.in_(JOB_LIVE))  # type: ignore[attr-defined]
    )
    return {(source, day, Stage(stage)): job_id for source, day, stage, job_id in rows}


def _held(claim: CellClaim, status: JobStatus) -> Conflict:
    return Conflict(
        f"cell {claim.source} {claim.day} {claim.stage} is held by job {claim.job_id}"
        f" ({status}); wait for it, or cancel job {claim.job_id}"
    )


def _give_up_cells(
    session: Session, holder: IngestionJob, *, taker: str, now: datetime, lease_timeout: float
) -> float:
    """An unclaimed queued job hands its cells to `taker` ("job 7"): it becomes interrupted
    (nothing of it ran, nothing is lost; no worker claims an interrupted job) and `resume`
    continues it later. Returns how long it had waited."""
    assert holder.id is not None
    waited = leases.unclaimed_for(holder, now=now, timeout=lease_timeout) or 0.0
    try:  # guarded by status: a worker that claims it this instant wins, and we refuse
        move_job(
            session,
            holder,
            JobStatus.interrupted,
            now=now,
            error=f"no worker claimed it ({leases.describe_wait(waited)}); {taker} took "
            f"its cells; resuming job {holder.id} continues it",
        )
    except IllegalTransition:
        raise Conflict(
            f"job {holder.id} ({holder.status}) holds cells {taker} needs; wait for it, or "
            f"cancel job {holder.id}"
        ) from None
    release_claims(session, holder.id)
    return waited


def give_up_unclaimed(
    session: Session,
    *,
    sources: list[str],
    stages: list[Stage],
    start: date | None,
    end: date | None,
    taker: str,
    now: datetime,
    lease_timeout: float,
) -> list[tuple[IngestionJob, float]]:
    """Queued jobs no worker claimed within the lease timeout that hold cells of `sources`
    x `stages` in [start, end] (None: unbounded) give them up to `taker`, a stage run
    outside the jobs, as they do to a job that needs them (`_claim_cells`): each becomes
    interrupted and resumable. A job a worker claims this instant keeps its cells (it is
    live: they stay held). Returns the jobs that gave theirs up, with how long they waited."""
    if not sources or not stages:
        return []
    query = (
        select(CellClaim.job_id)
        .join(IngestionJob, IngestionJob.id == CellClaim.job_id)  # type: ignore[arg-type]
        .where(
            CellClaim.source.in_(sources),  # type: ignore[attr-defined]
            CellClaim.stage.in_(stages),  # type: ignore[attr-defined]
            IngestionJob.status == JobStatus.queued,
        )
        .distinct()
    )
    if start is not None:
        query = query.where(CellClaim.day >= start)
    if end is not None:
        query = query.where(CellClaim.day <= end)
    given: list[tuple[IngestionJob, float]] = []
    for job_id in sorted(session.scalars(query)):
        holder = get_job(session, job_id)
        if leases.unclaimed_for(holder, now=now, timeout=lease_timeout) is None:
            continue
        try:
            waited = _give_up_cells(
                session, holder, taker=taker, now=now, lease_timeout=lease_timeout
            )
        except Conflict:
            continue  # a worker claimed it: the run reports its cells as held
        given.append((holder, waited))
    return given


def split_steps(
    items: list[IngestionPlanItem], chunk_days: int
) -> list[tuple[Stage, str, list[date]]]:
    """Steps: per source, chunks of `chunk_days` days that have work (a cell of any stage),
    in order; in each chunk export before embed before publish. A sparse source (a commit
    every other day) gets as many days of work per step as a dense one, not a step per
    calendar window holding one or two: what a step costs is per step, not per day."""
    by_source: dict[str, dict[Stage, set[date]]] = defaultdict(lambda: defaultdict(set))
    for item in items:
        by_source[item.source][item.stage].add(item.day)
    steps = []
    for source in sorted(by_source):
        stages = by_source[source]
        for chunk in _chunks(sorted(set().union(*stages.values())), chunk_days):
            span = set(chunk)
            for stage in Stage:
                days = sorted(stages.get(stage, set()) & span)
                if days:
                    steps.append((stage, source, days))
    return steps


def _chunks(days: list[date], size: int) -> list[list[date]]:
    """`days` (sorted) in runs of at most `size`, however far apart they are."""
    return [days[i : i + size] for i in range(0, len(days), size)]
