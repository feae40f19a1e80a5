"""The worker side of a job: take the lease, heartbeat (both in leases.py), run steps through
an executor, write a checkpoint after each day (in the ledger's transaction), stop at a day
boundary when asked, and end the job `failed` with the error when the machine fails under
it (a full or read-only disk, a database that refuses writes).

Every write carries the lease epoch (`transitions.fence`): a worker that lost its lease
stops at its next write and cannot overwrite the one that took over.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import get_engine, session_scope, utcnow
from softcopy.errors import Conflict, OperationFailed, SoftcopyError
from softcopy.ingestion import jobs, logs
from softcopy.ingestion.leases import Heartbeat, claim, new_owner  # noqa: F401 (the worker's API)
from softcopy.ingestion.models import Checkpoint, IngestionJob, IngestionPlan, JobStep
from softcopy.ingestion.states import (
    STEP_DONE,
    JobStatus,
    LogLevel,
    StepStatus,
)
from softcopy.ingestion.steps import (
    CancelRequested,
    LeaseLost,
    StageRunner,
    StepExecutor,
    StepFailed,
    StepTicket,
)
from softcopy.ingestion.transitions import fence, move_job, move_step
from softcopy.memory import ledger
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stage import StageContext, StageResult

Clock = Callable[[], datetime]
Progress = Callable[[int, int, str], None]  # days done, days total, what runs now
TRANSIENT_ATTEMPTS = 3
STOP_PAUSES = (0.0, 0.1, 0.4, 1.0)  # waits before each try to record a job's end


class JobNotEnded(OperationFailed):
    """The job's end could not be written (the database refuses writes): its lease expires
    and the next read of job state makes it interrupted, resumable."""

    def __init__(self, job_id: int, wanted: JobStatus, fault: str) -> None:
        self.job_id = job_id
        self.wanted = wanted
        self.fault = fault
        super().__init__(f"job {job_id} could not be recorded as {wanted}: {fault}")


def describe_fault(exc: BaseException) -> str:
    """One line for an exception: a database error without the SQL it was running."""
    if isinstance(exc, SoftcopyError):
        return str(exc)  # already one line that names what failed
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}"


def execute(
    settings: Settings,
    *,
    job_id: int,
    epoch: int,
    executor: StepExecutor,
    clock: Clock = utcnow,
    progress: Progress | None = None,
) -> JobStatus | None:
    """Run a leased job to its end; returns its final status (None if the lease was lost)."""
    engine = get_engine(settings.database_url)
    heartbeat = Heartbeat(settings, job_id=job_id, epoch=epoch, clock=clock)
    heartbeat.start()
    step_id: int | None = None
    try:
        with session_scope(engine) as session:
            job = jobs.get_job(session, job_id)
            done, total = len(jobs.checkpointed_cells(session, job_id)), job.cells_total
            step_ids = [s.id for s in jobs.steps_of(session, job_id) if s.status not in STEP_DONE]
        for step_id in step_ids:
            assert step_id is not None
            label = _start_step(settings, job_id, step_id, epoch, clock)
            if label is None:
                continue
            if progress:
                progress(done, total, label)

            def on_day(label: str = label) -> None:
                nonlocal done
                done += 1
                if progress:
                    progress(done, total, label)

            try:
                artifact = executor.run_step(
                    StepTicket(settings, job_id, step_id, epoch, clock), on_day=on_day
                )
            except CancelRequested:
                return _stop(settings, job_id, epoch, clock, JobStatus.cancelled, None, step_id)
            _finish_step(settings, job_id, step_id, epoch, clock, artifact)
            step_id = None
        return _stop(settings, job_id, epoch, clock, JobStatus.succeeded, None, None)
    except LeaseLost:
        return None
    except JobNotEnded:
        raise  # nothing more can be written; the lease expires instead
    except KeyboardInterrupt:
        # the Ctrl-C is what the caller must see, even when the job cannot be ended here
        # (fenced meanwhile, or the database refuses: the lease expiry ends it instead)
        with contextlib.suppress(LeaseLost, JobNotEnded):
            _stop(
                settings,
                job_id,
                epoch,
                clock,
                JobStatus.cancelled,
                "interrupted from the terminal",
                None,
            )
        raise
    except Exception as exc:  # a step is an error boundary, and so is the machine under it
        reason = exc.reason if isinstance(exc, StepFailed) else describe_fault(exc)
        try:
            return _stop(settings, job_id, epoch, clock, JobStatus.failed, reason, step_id)
        except LeaseLost:
            return None  # fenced meanwhile (cancel --force, an expired lease): not ours
    finally:
        heartbeat.stop()


def run_step_days(
    ticket: StepTicket,
    *,
    stage_runner: StageRunner = run_stage,
    on_day: Callable[[], None] | None = None,
    clock: Clock | None = None,
) -> int:
    """Do a step's days that have no checkpoint yet; returns how many were done.

    This is what every executor runs, in the worker or inside a notebook kernel: the ledger
    write and the checkpoint of a day commit together, fenced by the lease epoch.
    """
    clock = clock or ticket.clock
    engine = get_engine(ticket.settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        step = session.get(JobStep, ticket.step_id)
        if step is None:
            raise StepFailed(ticket.step_id, None, f"step {ticket.step_id} not found")
        ctx = StageContext(
            settings=ticket.settings,
            session=session,
            done_by=f"job:{ticket.job_id}",
            clock=clock,
            before_write=lambda: _still_ours(session, ticket),
            skip_bad_records=_skips_bad_records(session, ticket.job_id),
        )
        done = set(
            session.scalars(select(Checkpoint.day).where(Checkpoint.step_id == ticket.step_id))
        )
        # export reads the step's remaining days together (git: one process for them all)
        ctx.days_ahead[step.source] = [
            d for d in map(date.fromisoformat, step.days) if d not in done
        ]
        count = 0
        cancel = _at_boundary(session, ticket)
        for day in (date.fromisoformat(d) for d in step.days):
            if day in done:
                continue
            if cancel:
                raise CancelRequested(f"job {ticket.job_id}: cancel requested")
            result = _run_day(ctx, stage_runner, step, day, ticket)
            cancel = _checkpoint(session, ticket, step, result, clock())
            count += 1
            if on_day:
                on_day()
        return count


def _skips_bad_records(session: Session, job_id: int) -> bool:
    """The plan option: skip (and count) a day's unreadable records instead of failing it."""
    plan = session.scalar(
        select(IngestionPlan).join(IngestionJob).where(IngestionJob.id == job_id)  # type: ignore[arg-type]
    )
    return bool(plan is not None and plan.params.get("skip_bad_records"))


def _still_ours(session: Session, ticket: StepTicket) -> None:
    """Before a stage replaces a file or index rows: stop if the lease moved on."""
    epoch = session.scalar(select(IngestionJob.lease_epoch).where(IngestionJob.id == ticket.job_id))
    if epoch != ticket.epoch:
        raise LeaseLost(ticket.job_id, ticket.epoch)


def _at_boundary(session: Session, ticket: StepTicket) -> bool:
    """Before a step's first day: is the lease still ours, and was a cancel asked for?
    (Later boundaries learn the same from the previous day's checkpoint write.)"""
    row = session.execute(
        select(IngestionJob.lease_epoch, IngestionJob.cancel_requested).where(
            IngestionJob.id == ticket.job_id
        )
    ).one()
    session.commit()
    if row.lease_epoch != ticket.epoch:
        raise LeaseLost(ticket.job_id, ticket.epoch)
    return bool(row.cancel_requested)


def _run_day(
    ctx: StageContext, stage_runner: StageRunner, step: JobStep, day: date, ticket: StepTicket
) -> StageResult:
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return stage_runner(ctx, step.stage, step.source, day)
        except (Conflict, CancelRequested):
            raise  # the lease moved on, or a stop was asked for: not the day's failure
        except OperationFailed as exc:
            ctx.session.rollback()
            _record_day_failure(ctx, step, day, ticket, str(exc))
            raise StepFailed(step.id or 0, day, str(exc)) from exc
        except OperationalError as exc:
            ctx.session.rollback()
            if attempt == TRANSIENT_ATTEMPTS:
                raise _day_failed(ctx, step, day, ticket, exc) from exc
            fence(ctx.session, job_id=ticket.job_id, epoch=ticket.epoch, now=ctx.clock())
            logs.write(
                ctx.session,
                event="day.retry",
                level=LogLevel.warning,
                message=f"{step.stage} {step.source} {day}: attempt {attempt} hit {exc.orig}",
                now=ctx.clock(),
                job_id=ticket.job_id,
                step_id=step.id,
                source=step.source,
                day=day,
                attempt=attempt,
            )
            ctx.session.commit()
        except Exception as exc:  # the machine under the day (a full disk), or a bug
            ctx.session.rollback()
            raise _day_failed(ctx, step, day, ticket, exc) from exc
    raise AssertionError("unreachable")


def _day_failed(
    ctx: StageContext, step: JobStep, day: date, ticket: StepTicket, exc: BaseException
) -> StepFailed:
    """The day's failure, recorded in the ledger and the log if the database still takes
    writes (when it does not, the job's end records the error, or its lease expires)."""
    reason = f"{step.stage} {step.source} {day}: {describe_fault(exc)}"
    try:
        _record_day_failure(ctx, step, day, ticket, reason)
    except (OperationalError, OSError):
        ctx.session.rollback()
    return StepFailed(step.id or 0, day, reason)


def _record_day_failure(
    ctx: StageContext, step: JobStep, day: date, ticket: StepTicket, error: str
) -> None:
    session = ctx.session
    fence(session, job_id=ticket.job_id, epoch=ticket.epoch, now=ctx.clock())
    ledger.record_failure(
        session,
        source=step.source,
        day=day,
        stage=step.stage,
        error=error,
        done_by=ctx.done_by,
        now=ctx.clock(),
    )
    logs.write(
        session,
        event="day.failed",
        level=LogLevel.error,
        message=error,
        now=ctx.clock(),
        job_id=ticket.job_id,
        step_id=step.id,
        source=step.source,
        day=day,
    )
    session.commit()


def _checkpoint(
    session: Session, ticket: StepTicket, step: JobStep, result: StageResult, now: datetime
) -> bool:
    """Checkpoint the day in the transaction that holds its ledger write, or write nothing;
    returns whether a cancel was requested meanwhile."""
    try:
        cancel = fence(session, job_id=ticket.job_id, epoch=ticket.epoch, now=now, cells_done=1)
    except LeaseLost:
        session.rollback()
        raise
    session.execute(
        insert(Checkpoint.__table__),  # Core: once per day of every job
        {
            "step_id": ticket.step_id,
            "job_id": ticket.job_id,
            "source": step.source,
            "stage": step.stage,
            "day": result.day,
            "input_digest": result.input_digest,
            "output_digest": result.output_digest,
            "artifact_sha": result.artifact_sha,
            "items": result.items,
            "skipped": result.skipped,
            "lease_epoch": ticket.epoch,
            "created_at": now,
        },
    )
    logs.write(
        session,
        event="checkpoint",
        message=f"{step.stage} {step.source} {result.day}: {result.items} items",
        now=now,
        job_id=ticket.job_id,
        step_id=step.id,
        source=step.source,
        day=result.day,
        items=result.items,
        skipped=result.skipped,
        output_digest=result.output_digest,
    )
    session.commit()
    return cancel


def _start_step(
    settings: Settings, job_id: int, step_id: int, epoch: int, clock: Clock
) -> str | None:
    """Mark the step running (or skipped when every day is checkpointed); its label."""
    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:
        fence(session, job_id=job_id, epoch=epoch, now=clock())
        step = session.get(JobStep, step_id)
        assert step is not None
        done = set(session.scalars(select(Checkpoint.day).where(Checkpoint.step_id == step_id)))
        if {date.fromisoformat(d) for d in step.days} <= done:
            move_step(session, step, StepStatus.skipped, now=clock())
            return None
        move_step(session, step, StepStatus.running, now=clock())
        return f"{step.stage} {step.source} {step.start_day}…{step.end_day}"


def _finish_step(
    settings: Settings, job_id: int, step_id: int, epoch: int, clock: Clock, artifact: str | None
) -> None:
    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:
        fence(session, job_id=job_id, epoch=epoch, now=clock())
        step = session.get(JobStep, step_id)
        assert step is not None
        step.artifact = artifact
        session.add(step)
        move_step(session, step, StepStatus.succeeded, now=clock())


def _stop(
    settings: Settings,
    job_id: int,
    epoch: int,
    clock: Clock,
    to: JobStatus,
    error: str | None,
    step_id: int | None,
) -> JobStatus:
    """End the job, trying again for a few seconds while the database refuses writes (a
    disk that was full may have room once the failed day's transaction is rolled back)."""
    fault: BaseException | None = None
    for pause in STOP_PAUSES:
        time.sleep(pause)
        try:
            return _end_job(settings, job_id, epoch, clock, to, error, step_id)
        except (OperationalError, OSError) as exc:
            fault = exc
    assert fault is not None
    raise JobNotEnded(job_id, to, describe_fault(fault)) from fault


def _end_job(
    settings: Settings,
    job_id: int,
    epoch: int,
    clock: Clock,
    to: JobStatus,
    error: str | None,
    step_id: int | None,
) -> JobStatus:
    """The current step, then the job, then its claims, in one transaction."""
    engine = get_engine(settings.database_url)
    now = clock()
    with session_scope(engine) as session:
        fence(session, job_id=job_id, epoch=epoch, now=now)
        job = jobs.get_job(session, job_id)
        if step_id is not None:
            step = session.get(JobStep, step_id)
            assert step is not None
            if step.status is StepStatus.running:
                step_to = StepStatus.failed if to is JobStatus.failed else StepStatus.cancelled
                move_step(session, step, step_to, now=now, error=error)
        if to is JobStatus.cancelled:
            jobs.finish_steps(session, job, StepStatus.cancelled, now)
        move_job(session, job, to, now=now, epoch=epoch, error=error)
        jobs.release_claims(session, job_id)
    return to
