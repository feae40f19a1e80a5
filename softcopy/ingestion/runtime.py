"""The worker side of a job: take the lease, heartbeat (both in leases.py), run steps through
an executor, write a checkpoint for each day (in the ledger's transaction), stop at a day
boundary when asked, and end the job `failed` with the error when the machine fails under
it (a full or read-only disk, a database that refuses writes).

With `parallel` > 1 the worker is a coordinator: ready steps (scheduler.Readiness) run at
once on slots (scheduler.Slot), each with its own executor; the inline executor's steps
run in step processes. The order within each (source, chunk) is kept; a failed step fails
the job once the running steps have stopped at their next day boundary.

Every write carries the lease epoch (`transitions.fence`): a worker that lost its lease
stops at its next write and cannot overwrite the one that took over.

Group commits: a step commits its days in groups: a group ends once GROUP_SECONDS have
passed since it began or it holds GROUP_DAYS days, and commits, in one short transaction,
the fence (which heartbeats and reads a cancel request), the days' ledger rows, their
checkpoints (one row per day, as ever) and their log rows, each as one statement batch.
Nothing is written to the database while a day runs, so no transaction (and on SQLite no
write lock) stays open across a day's work. A worker killed mid-group loses that group's
checkpoints only: at most one group (≤ GROUP_SECONDS of work) is redone on resume; the
artifacts and index rows its days wrote are replaced by the redo, as for any redone day.
A cancel is seen at the next group commit; a stop asked by the coordinator (a stop file)
at the next day.
"""

from __future__ import annotations

import contextlib
import fcntl
import queue
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import get_engine, session_scope, utcnow
from softcopy.errors import Conflict, OperationFailed
from softcopy.ingestion import jobs, logs, planner
from softcopy.ingestion.leases import Heartbeat, claim, new_owner  # noqa: F401 (the worker's API)
from softcopy.ingestion.models import (
    Checkpoint,
    IngestionJob,
    IngestionPlan,
    JobStep,
    LogRecord,
)
from softcopy.ingestion.scheduler import (
    Event,
    Outcome,
    Readiness,
    Slot,
    StepNode,
    StepStopped,
    clear_stop,
    describe_fault,
    make_slot,
    request_stop,
    stop_path,
)
from softcopy.ingestion.states import (
    JOB_LEASED,
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
from softcopy.memory.stage import PendingWrites, ShrinkGuard, StageContext, StageResult
from softcopy.memory.stages import Stage

Clock = Callable[[], datetime]
Progress = Callable[[int, int, str], None]  # days done, days total, what runs now
TRANSIENT_ATTEMPTS = 3
STOP_PAUSES = (0.0, 0.1, 0.4, 1.0)  # waits before each try to record a job's end
GROUP_SECONDS = 0.1  # a group of days commits this long after it began, at the latest
GROUP_DAYS = 64  # ... or once it holds this many days
# Before a stage replaces an artifact or index rows, the lease is proved again unless it
# was proved this recently (by a group commit or a check): a monotonic clock, so a worker
# frozen (SIGSTOP) for longer checks again when it wakes.
LEASE_PROOF_SECONDS = 0.05


class JobNotEnded(OperationFailed):
    """The job's end could not be written (the database refuses writes): its lease expires
    and the next read of job state makes it interrupted, resumable."""

    def __init__(self, job_id: int, wanted: JobStatus, fault: str) -> None:
        self.job_id = job_id
        self.wanted = wanted
        self.fault = fault
        super().__init__(f"job {job_id} could not be recorded as {wanted}: {fault}")


def execute(
    settings: Settings,
    *,
    job_id: int,
    epoch: int,
    executor: StepExecutor,
    clock: Clock = utcnow,
    progress: Progress | None = None,
    parallel: int = 1,
    more_executors: Callable[[], StepExecutor] | None = None,
) -> JobStatus | None:
    """Run a leased job to its end; returns its final status (None if the lease was lost).

    With `parallel` > 1 (and `more_executors`, which makes the executor of each further
    slot), up to `parallel` ready steps run at once; `executor` is the first slot's."""
    engine = get_engine(settings.database_url)
    heartbeat = Heartbeat(settings, job_id=job_id, epoch=epoch, clock=clock)
    heartbeat.start()
    step_id: int | None = None
    try:
        if parallel > 1 and more_executors is not None:
            coordinator = _Coordinator(settings, job_id, epoch, clock, progress)
            return coordinator.run(executor, more_executors, parallel)
        with session_scope(engine) as session:
            job = jobs.get_job(session, job_id)
            checkpointed = _checkpoints_per_step(session, job_id)
            done, total = sum(checkpointed.values()), job.cells_total
            step_ids = [s.id for s in jobs.steps_of(session, job_id) if s.status not in STEP_DONE]
        finished: tuple[int, str | None] | None = None
        for step_id in step_ids:
            assert step_id is not None
            label, cancel = _advance(
                settings, job_id, epoch, clock, finished, step_id, checkpointed.get(step_id, 0)
            )
            finished = None
            if cancel:
                return _stop(settings, job_id, epoch, clock, JobStatus.cancelled, None, None)
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
            finished, step_id = (step_id, artifact), None
        if finished is not None:
            _advance(settings, job_id, epoch, clock, finished, None, 0)
        return _stop(settings, job_id, epoch, clock, JobStatus.succeeded, None, None)
    except LeaseLost:
        return None
    except JobNotEnded:
        raise  # nothing more can be written; the lease expires instead
    except KeyboardInterrupt:
        # the Ctrl-C is what the caller must see, even when the job cannot be ended here
        # (fenced meanwhile, or the database refuses: the lease expiry ends it instead)
        _fresh_connections(settings)
        with contextlib.suppress(LeaseLost, JobNotEnded, SQLAlchemyError):
            _stop(
                settings,
                job_id,
                epoch,
                clock,
                JobStatus.cancelled,
                "cancelled from the terminal (Ctrl-C)",
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


class _Coordinator:
    """The lease holder with parallel steps: hands ready steps to idle slots, counts days
    as the slots report them, and ends the job once no step runs."""

    def __init__(
        self,
        settings: Settings,
        job_id: int,
        epoch: int,
        clock: Clock,
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.job_id = job_id
        self.epoch = epoch
        self.clock = clock
        self.progress = progress
        self.events: queue.Queue[Event] = queue.Queue()
        self.stop_file = stop_path(settings, job_id, epoch)
        self.labels: dict[int, str] = {}
        self.running: dict[int, Slot] = {}
        self.idle: list[Slot] = []
        self.cause: tuple[int, Outcome] | None = None  # the first step that did not succeed
        self.done = 0
        self.total = 0
        self.checkpointed: dict[int, int] = {}
        self.finished: list[tuple[int, str | None]] = []  # succeeded, not yet recorded

    def run(
        self, executor: StepExecutor, more_executors: Callable[[], StepExecutor], parallel: int
    ) -> JobStatus:
        engine = get_engine(self.settings.database_url)
        with session_scope(engine) as session:
            job = jobs.get_job(session, self.job_id)
            self.checkpointed = _checkpoints_per_step(session, self.job_id)
            self.done = sum(self.checkpointed.values())
            self.total = job.cells_total
            steps = [s for s in jobs.steps_of(session, self.job_id) if s.status not in STEP_DONE]
        graph = Readiness(
            StepNode(s.id, s.ordinal, s.source, s.start_day, s.end_day)  # type: ignore[arg-type]
            for s in steps
        )
        clear_stop(self.stop_file)
        # the first slot runs in this process; the others get executors of their own (an
        # in-process executor: a step process each)
        slots = [make_slot(executor, self.events, 0, own_process=False)]
        for number in range(1, min(parallel, len(steps))):
            slots.append(make_slot(more_executors(), self.events, number, own_process=True))
        for slot in slots:
            slot.start()
        try:
            try:
                self._drive(graph)
            except KeyboardInterrupt:
                request_stop(self.stop_file)  # the running steps stop at their next day
                _fresh_connections(self.settings)
                with contextlib.suppress(KeyboardInterrupt):
                    self._drain()
                with contextlib.suppress(KeyboardInterrupt, LeaseLost, SQLAlchemyError):
                    self._record_finished()
                raise
            return self._end()
        finally:
            if self.running:  # ended by an error of the coordinator's own (a lost lease)
                request_stop(self.stop_file)
            for slot in slots:
                slot.close(owns_executor=slot.number != 0)
            clear_stop(self.stop_file)

    def _drive(self, graph: Readiness) -> None:
        while True:
            if self.cause is None:
                self._dispatch(graph)
            if not self.running and (self.cause is not None or graph.remaining == 0):
                return
            if not self.running and not self.idle:
                pass  # the slots are still starting
            elif not self.running and not graph.ready():
                raise AssertionError(f"job {self.job_id}: steps wait on steps that never run")
            self._next_event(graph)

    def _dispatch(self, graph: Readiness) -> None:
        while self.idle and (ready := graph.ready()):
            step_id = ready[0]
            label, cancel = _advance(
                self.settings,
                self.job_id,
                self.epoch,
                self.clock,
                self.finished.pop() if self.finished else None,
                step_id,
                self.checkpointed.get(step_id, 0),
            )
            if cancel:
                self._failed(step_id, Outcome("cancel"))
                return
            if label is None:  # every day already checkpointed: skipped
                graph.finish(step_id)
                continue
            graph.start(step_id)
            slot = self.idle.pop(0)
            self.running[step_id] = slot
            self.labels[step_id] = label
            if self.progress:
                self.progress(self.done, self.total, label)
            slot.submit(StepTicket(self.settings, self.job_id, step_id, self.epoch, self.clock))

    def _next_event(self, graph: Readiness | None) -> None:
        try:
            kind, slot, data = self.events.get(timeout=0.5)
        except queue.Empty:
            return
        if kind == "ready":
            self.idle.append(slot)
        elif kind == "day":
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total, self.labels.get(data, ""))
        else:
            step_id, outcome = data
            del self.running[step_id]
            self.idle.append(slot)
            if outcome.kind == "ok":
                # recorded with the next step's start (or at the end), in one transaction
                self.finished.append((step_id, outcome.artifact))
                if graph is not None:
                    graph.finish(step_id)
            else:
                self._failed(step_id, outcome)

    def _failed(self, step_id: int, outcome: Outcome) -> None:
        if self.cause is None:
            self.cause = (step_id, outcome)
            request_stop(self.stop_file)  # the other running steps stop at their next day

    def _record_finished(self) -> None:
        while self.finished:
            _advance(
                self.settings, self.job_id, self.epoch, self.clock, self.finished.pop(), None, 0
            )

    def _drain(self) -> None:
        """Wait for the running steps to stop (each at its next day boundary). A Ctrl-C may
        land between taking a slot for a step and handing the step over: that slot is not
        busy, and nothing is waited for it."""
        while any(slot.busy for slot in self.running.values()):
            self._next_event(None)
        while not self.events.empty():  # ends reported meanwhile: a finished step is kept
            self._next_event(None)

    def _end(self) -> JobStatus:
        s, job_id, epoch, clock = self.settings, self.job_id, self.epoch, self.clock
        if self.cause is None or self.cause[1].kind != "lost":
            self._record_finished()
        if self.cause is None:
            return _stop(s, job_id, epoch, clock, JobStatus.succeeded, None, None)
        step_id, outcome = self.cause
        if outcome.kind == "lost":
            raise LeaseLost(job_id, epoch)
        if outcome.kind == "cancel":
            return _stop(s, job_id, epoch, clock, JobStatus.cancelled, None, step_id)
        error = outcome.error
        if isinstance(error, StepFailed):
            reason = error.reason
        elif error is not None:
            reason = describe_fault(error)
        else:
            reason = f"step {step_id} {outcome.kind}"
        return _stop(s, job_id, epoch, clock, JobStatus.failed, reason, step_id)


def run_step_days(
    ticket: StepTicket,
    *,
    stage_runner: StageRunner = run_stage,
    on_day: Callable[[], None] | None = None,
    clock: Clock | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> int:
    """Do a step's days that have no checkpoint yet; returns how many were done.

    This is what every executor runs, in the worker, a step process or a notebook kernel:
    the days commit in groups (see the module's docstring), each day's ledger rows and its
    checkpoint in one transaction, fenced by the lease epoch. `on_day` is called for each
    day once it is committed. `stop_requested` tells whether the coordinator asked the
    running steps to stop (before each day; by default: its stop file exists).
    """
    clock = clock or ticket.clock
    engine = get_engine(ticket.settings.database_url)
    if stop_requested is None:
        stop_requested = stop_path(ticket.settings, ticket.job_id, ticket.epoch).exists
    with Session(engine, expire_on_commit=False) as session:
        step = session.get(JobStep, ticket.step_id)
        if step is None:
            raise StepFailed(ticket.step_id, None, f"step {ticket.step_id} not found")
        pending = PendingWrites()
        lease = _LeaseProof(session, ticket)
        plan = _plan_of(session, ticket.job_id)
        ctx = StageContext(
            settings=ticket.settings,
            session=session,
            done_by=f"job:{ticket.job_id}",
            clock=clock,
            before_write=lease.check,
            skip_bad_records=bool(plan.params.get("skip_bad_records")),
            shrink_guard=shrink_guard(plan, ticket.settings),
            pending=pending,
        )
        done = set(
            session.scalars(select(Checkpoint.day).where(Checkpoint.step_id == ticket.step_id))
        )
        todo = [d for d in map(date.fromisoformat, step.days) if d not in done]
        # export reads the step's remaining days together (git: one process for them all);
        # embed and publish read their upstream ledger rows for them in one query
        ctx.days_ahead[step.source] = todo
        group = _Group(session, ticket, step, pending, lease, on_day)
        cancel = _at_boundary(session, ticket)
        lease.proved()
        for day in todo:
            if cancel:
                raise CancelRequested(f"job {ticket.job_id}: cancel requested")
            if stop_requested():
                group.commit(clock())
                raise StepStopped(f"job {ticket.job_id}: step {ticket.step_id} stopped")
            result = _run_day(ctx, stage_runner, step, day, ticket, group)
            group.add(result, clock())
            if group.due():
                cancel = group.commit(clock())
        group.commit(clock())
        return len(todo)


class _LeaseProof:
    """`before_write` of a job's stages: prove the lease is still ours, unless a group
    commit or a check proved it less than LEASE_PROOF_SECONDS ago."""

    def __init__(self, session: Session, ticket: StepTicket) -> None:
        self.session = session
        self.ticket = ticket
        self.at = float("-inf")

    def proved(self) -> None:
        self.at = time.monotonic()

    def check(self) -> None:
        if time.monotonic() - self.at >= LEASE_PROOF_SECONDS:
            _still_ours(self.session, self.ticket)
            self.proved()


class _Group:
    """The days of a step done since its last commit, and their rows, written together."""

    def __init__(
        self,
        session: Session,
        ticket: StepTicket,
        step: JobStep,
        pending: PendingWrites,
        lease: _LeaseProof,
        on_day: Callable[[], None] | None,
    ) -> None:
        self.session = session
        self.ticket = ticket
        self.step = step
        self.pending = pending
        self.lease = lease
        self.on_day = on_day
        self.checkpoints: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.began = time.monotonic()

    def add(self, result: StageResult, now: datetime) -> None:
        step, ticket = self.step, self.ticket
        self.checkpoints.append(
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
            }
        )
        self.logs.append(
            {
                "ts": now,
                "level": LogLevel.info,
                "event": "checkpoint",
                "job_id": ticket.job_id,
                "step_id": step.id,
                "source": step.source,
                "day": result.day,
                "message": f"{step.stage} {step.source} {result.day}: {result.items} items"
                + (f", {result.skipped} bad records skipped" if result.skipped else ""),
                "fields": {
                    "items": result.items,
                    "skipped": result.skipped,
                    "output_digest": result.output_digest,
                },
            }
        )

    def due(self) -> bool:
        return len(self.checkpoints) >= GROUP_DAYS or time.monotonic() - self.began >= GROUP_SECONDS

    def commit(self, now: datetime) -> bool:
        """Fence, then write the group's rows and commit, or write nothing; returns whether
        a cancel was requested meanwhile."""
        session, ticket = self.session, self.ticket
        try:
            cancel = fence(
                session,
                job_id=ticket.job_id,
                epoch=ticket.epoch,
                now=now,
                cells_done=len(self.checkpoints),
                remote=ticket.remote,
            )
            if self.checkpoints:
                self.pending.write(session)
                session.execute(insert(Checkpoint.__table__), self.checkpoints)  # type: ignore[attr-defined]
                session.execute(insert(LogRecord.__table__), self.logs)  # type: ignore[attr-defined]
            session.commit()
        except BaseException:
            session.rollback()
            self.pending.clear()
            raise
        self.lease.proved()
        self.began = time.monotonic()  # the next group begins with the next day's work
        days = len(self.checkpoints)
        self.checkpoints.clear()
        self.logs.clear()
        if self.on_day:
            for _ in range(days):
                self.on_day()
        return cancel


def _plan_of(session: Session, job_id: int) -> IngestionPlan:
    """The job's plan, whose options its days follow: skip (and count) a day's unreadable
    records instead of failing it; remove published items (see `shrink_guard`)."""
    plan = session.scalar(
        select(IngestionPlan).join(IngestionJob).where(IngestionJob.id == job_id)  # type: ignore[arg-type]
    )
    assert plan is not None, f"job {job_id} has a plan"  # a foreign key, never null
    return plan


def shrink_guard(plan: IngestionPlan, settings: Settings) -> ShrinkGuard | None:
    """What publish may remove in the plan's job: anything if the plan allows shrinking;
    else what the planner let through when it made the plan (planner.shrinks), checked
    again on each day as it is published, against what the source holds then. A queued
    job claimed after its source was truncated, or a source cut while its job runs, so
    fails the day (resume refuses it the same way) instead of emptying the index."""
    if plan.params.get("allow_shrink"):
        return None
    return ShrinkGuard(planner.shrink_window(plan, settings.timezone))


def _still_ours(session: Session, ticket: StepTicket) -> None:
    """Before a stage replaces a file or index rows: stop if the lease moved on."""
    row = session.execute(
        select(IngestionJob.lease_epoch, IngestionJob.status).where(
            IngestionJob.id == ticket.job_id
        )
    ).one()
    if not _holds(row, ticket):
        raise LeaseLost(ticket.job_id, ticket.epoch)


def _at_boundary(session: Session, ticket: StepTicket) -> bool:
    """Before a step's first day: is the lease still ours, and was a cancel asked for?
    (Later boundaries learn the same from the previous day's checkpoint write.)"""
    row = session.execute(
        select(IngestionJob.lease_epoch, IngestionJob.status, IngestionJob.cancel_requested).where(
            IngestionJob.id == ticket.job_id
        )
    ).one()
    session.commit()
    if not _holds(row, ticket):
        raise LeaseLost(ticket.job_id, ticket.epoch)
    return bool(row.cancel_requested)


def _holds(row: Any, ticket: StepTicket) -> bool:
    """The ticket's epoch is the job's (and, for a remote task, the job is still leased:
    a job whose holder died ends its tasks' writes as soon as it is found interrupted)."""
    return row.lease_epoch == ticket.epoch and (not ticket.remote or row.status in JOB_LEASED)


def _run_day(
    ctx: StageContext,
    stage_runner: StageRunner,
    step: JobStep,
    day: date,
    ticket: StepTicket,
    group: _Group,
) -> StageResult:
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            if step.stage is Stage.export:
                _refresh_scan(ctx, step.source)
            return stage_runner(ctx, step.stage, step.source, day)
        except (Conflict, CancelRequested):
            raise  # the lease moved on, or a stop was asked for: not the day's failure
        except OperationFailed as exc:
            ctx.session.rollback()
            group.commit(ctx.clock())  # the days before it stay done
            _record_day_failure(ctx, step, day, ticket, str(exc))
            raise StepFailed(step.id or 0, day, str(exc)) from exc
        except OperationalError as exc:
            ctx.session.rollback()
            if attempt == TRANSIENT_ATTEMPTS:
                with contextlib.suppress(OperationalError, OSError):
                    group.commit(ctx.clock())
                raise _day_failed(ctx, step, day, ticket, exc) from exc
            fence(
                ctx.session,
                job_id=ticket.job_id,
                epoch=ticket.epoch,
                now=ctx.clock(),
                remote=ticket.remote,
            )
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
            with contextlib.suppress(OperationalError, OSError):
                group.commit(ctx.clock())
            raise _day_failed(ctx, step, day, ticket, exc) from exc
    raise AssertionError("unreachable")


def _refresh_scan(ctx: StageContext, source: str) -> None:
    """An export step's first day: the source's scan index refreshed and committed at once,
    one step at a time per source (parallel steps of a source that changed would otherwise
    both write its new rows)."""
    if ctx.refreshed(source):
        return
    with _file_lock(ctx.settings.home / "run" / f"scan-{source}.lock"):
        ctx.source(source)
        ctx.session.commit()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    fence(session, job_id=ticket.job_id, epoch=ticket.epoch, now=ctx.clock(), remote=ticket.remote)
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


def _checkpoints_per_step(session: Session, job_id: int) -> dict[int, int]:
    """How many days of each step of the job are checkpointed (one query for the job)."""
    return dict(
        session.execute(  # type: ignore[arg-type]
            select(Checkpoint.step_id, func.count())
            .where(Checkpoint.job_id == job_id)
            .group_by(Checkpoint.step_id)
        ).all()
    )


def _advance(
    settings: Settings,
    job_id: int,
    epoch: int,
    clock: Clock,
    finished: tuple[int, str | None] | None,
    start: int | None,
    checkpointed: int,
) -> tuple[str | None, bool]:
    """In one fenced transaction: the step that `finished` succeeded (with its artifact),
    and the step to `start` running (or skipped: its `checkpointed` days are all of its
    days). Returns (the started step's label or None, whether a cancel was requested: then
    no step is started)."""
    engine = get_engine(settings.database_url)
    now = clock()
    with session_scope(engine) as session:
        cancel = fence(session, job_id=job_id, epoch=epoch, now=now)
        if finished is not None:
            step = session.get(JobStep, finished[0])
            assert step is not None
            step.artifact = finished[1]
            move_step(session, step, StepStatus.succeeded, now=now)
        if start is None or cancel:
            return None, cancel
        step = session.get(JobStep, start)
        assert step is not None
        if checkpointed >= len(step.days):
            move_step(session, step, StepStatus.skipped, now=now)
            return None, False
        move_step(session, step, StepStatus.running, now=now)
        return f"{step.stage} {step.source} {step.start_day}…{step.end_day}", False


def _fresh_connections(settings: Settings) -> None:
    """After a Ctrl-C, end the job on new connections: one whose query the Ctrl-C cut short
    may be left unusable in the pool (psycopg: "can't change 'autocommit' now: connection in
    transaction status ACTIVE", which failed the job instead of cancelling it)."""
    get_engine(settings.database_url).dispose()


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
        if to is JobStatus.failed:  # steps stopped beside the failed one (parallel steps)
            for other in jobs.steps_of(session, job_id):
                if other.status is StepStatus.running:
                    move_step(session, other, StepStatus.pending, now=now)
        if to is JobStatus.cancelled:
            jobs.finish_steps(session, job, StepStatus.cancelled, now)
        move_job(session, job, to, now=now, epoch=epoch, error=error)
        jobs.release_claims(session, job_id)
    return to
