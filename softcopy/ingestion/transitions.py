"""The one place job and step statuses change: checked against the allowed-transitions
tables, conditional on the status read (and on the lease epoch for a worker's writes),
stamped with times and logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from softcopy.errors import Conflict
from softcopy.ingestion import logs
from softcopy.ingestion.models import IngestionJob, JobStep
from softcopy.ingestion.states import (
    JOB_LEASED,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    JobStatus,
    LogLevel,
    StepStatus,
)


class IllegalTransition(Conflict):
    def __init__(self, kind: str, ident: int, current: str, wanted: str) -> None:
        self.kind = kind
        self.ident = ident
        self.current = current
        self.wanted = wanted
        super().__init__(f"{kind} {ident} is {current}; it cannot become {wanted}")


class LeaseLost(Conflict):
    """Another worker took the job over (or it was fenced): this worker must stop."""

    def __init__(self, job_id: int, epoch: int) -> None:
        self.job_id = job_id
        self.epoch = epoch
        super().__init__(f"job {job_id}: lease epoch {epoch} is no longer current")


def fence(
    session: Session,
    *,
    job_id: int,
    epoch: int,
    now: datetime,
    cells_done: int = 0,
    remote: bool = False,
) -> bool:
    """Prove this worker still holds the lease, and heartbeat, in the caller's transaction;
    returns whether a cancel was requested (one round trip for all three).

    `remote`: a task the lease holder runs elsewhere (a Dask worker) proves the epoch and
    that the job is still live, but does not heartbeat: only the holder itself keeps its
    lease, so a dead holder's lease expires even while its tasks run, and they stop there.

    On PostgreSQL the row stays locked until commit, so a takeover waits for us or we for
    it; on SQLite writers are serialised anyway. Either way no write of an old epoch lands.
    """
    jobs = IngestionJob.__table__  # Core, not ORM: this runs once per day of every job
    statement = update(jobs).where(jobs.c.id == job_id, jobs.c.lease_epoch == epoch)
    if remote:
        statement = statement.where(jobs.c.status.in_([s.value for s in JOB_LEASED]))
    else:
        statement = statement.values(heartbeat_at=now)
    row = session.execute(
        statement.values(cells_done=jobs.c.cells_done + cells_done).returning(
            jobs.c.cancel_requested
        )
    ).first()
    if row is None:
        raise LeaseLost(job_id, epoch)
    return bool(row[0])


def move_job(
    session: Session,
    job: IngestionJob,
    to: JobStatus,
    *,
    now: datetime,
    epoch: int | None = None,
    error: str | None = None,
    stale_before: datetime | None = None,
    **values: Any,
) -> None:
    """Move `job` to `to`, refusing an illegal move and (with `epoch`) a lost lease; with
    `stale_before`, only if the worker has not heartbeaten since (an expiry that a fresh
    heartbeat overtook does not happen)."""
    assert job.id is not None
    if to not in JOB_TRANSITIONS[job.status]:
        raise IllegalTransition("job", job.id, job.status, to)
    values["status"] = to
    if to is JobStatus.running and job.started_at is None:
        values["started_at"] = now
    if to in JOB_TERMINAL:
        values["finished_at"] = now
    if to is JobStatus.queued:
        values |= {"finished_at": None, "error": None, "cancel_requested": False, "queued_at": now}
    if error is not None:
        values["error"] = error
    statement = update(IngestionJob).where(
        IngestionJob.id == job.id,  # type: ignore[arg-type]
        IngestionJob.status == job.status,  # type: ignore[arg-type]
    )
    if epoch is not None:
        statement = statement.where(IngestionJob.lease_epoch == epoch)  # type: ignore[arg-type]
    if stale_before is not None:
        beat = IngestionJob.heartbeat_at
        statement = statement.where(or_(beat.is_(None), beat < stale_before))  # type: ignore[union-attr,operator]
    before = job.status  # the UPDATE below also refreshes `job` in the session
    if session.execute(statement.values(**values)).rowcount != 1:
        session.refresh(job)
        if epoch is not None and job.lease_epoch != epoch:
            raise LeaseLost(job.id, epoch)
        raise IllegalTransition("job", job.id, job.status, to)
    for key, value in values.items():
        setattr(job, key, value)
    logs.write(
        session,
        event="job.transition",
        level=LogLevel.error if to is JobStatus.failed else LogLevel.info,
        message=f"job {job.id}: {before} → {to}" + (f": {error}" if error else ""),
        now=now,
        job_id=job.id,
        before=str(before),
        after=str(to),
    )


def move_step(
    session: Session, step: JobStep, to: StepStatus, *, now: datetime, error: str | None = None
) -> None:
    """Move `step` to `to`; the caller fences the job in the same transaction."""
    assert step.id is not None
    if to not in STEP_TRANSITIONS[step.status]:
        raise IllegalTransition("step", step.id, step.status, to)
    values: dict[str, Any] = {"status": to}
    if to is StepStatus.running:
        values |= {"started_at": now, "attempts": step.attempts + 1}
    if to in (StepStatus.succeeded, StepStatus.failed, StepStatus.cancelled, StepStatus.skipped):
        values["finished_at"] = now
    if to is StepStatus.pending:
        values |= {"finished_at": None, "error": None}
    if error is not None:
        values["error"] = error
    before = step.status
    steps = JobStep.__table__  # Core, not ORM: twice per step (profiled 1.45 -> 0.75 ms)
    done = session.execute(
        update(steps).where(steps.c.id == step.id, steps.c.status == step.status).values(**values)
    )
    if done.rowcount != 1:
        session.refresh(step)
        raise IllegalTransition("step", step.id, step.status, to)
    for key, value in values.items():
        set_committed_value(step, key, value)  # what the row now holds: nothing to flush
    logs.write(
        session,
        event="step.transition",
        level=LogLevel.error if to is StepStatus.failed else LogLevel.info,
        message=f"step {step.ordinal} ({step.stage} {step.source} {step.start_day}…{step.end_day}):"
        f" {before} → {to}" + (f": {error}" if error else ""),
        now=now,
        job_id=step.job_id,
        step_id=step.id,
        source=step.source,
        before=str(before),
        after=str(to),
    )
