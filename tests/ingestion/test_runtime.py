"""runtime.py on its own, with a stage runner stand-in that only counts (jobkit.CountingRunner):
a step's days are fenced by the lease epoch, checkpointed, and a job resumes from its
checkpoints; a cancel lands at a day boundary; a worker whose lease expired (a zombie)
writes nothing once another worker took over. Jobs are made by jobs.create_job on
hand-made plans and claimed with leases.claim; the service is not involved."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session, select

from softcopy.config import Settings, add_source, load_settings
from softcopy.db import session_scope
from softcopy.errors import StageFailed
from softcopy.ingestion import jobs, leases, runtime
from softcopy.ingestion.executors import InlineExecutor
from softcopy.ingestion.models import IngestionJob, LogRecord
from softcopy.ingestion.states import JobStatus, Stage, StepStatus
from softcopy.ingestion.steps import CancelRequested, LeaseLost, StepFailed, StepTicket
from softcopy.memory.stage import StageContext, StageResult
from tests.ingestion.jobkit import (
    DAY1,
    Cell,
    Clock,
    CountingRunner,
    cells,
    checkpoints,
    claimed_cells,
    claimed_job,
    job_row,
    steps_of,
)


@pytest.fixture
def settings(home: Path) -> Settings:
    """This module's home has one source, an empty chat export: export steps refresh its
    scan, as they do any source's, and the stand-in runner does the rest."""
    (home / "chat.jsonl").write_text("")
    add_source(home, name="chat", kind="jsonl", path="chat.jsonl")
    return load_settings(home)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def every_day_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group commit after every day (not after GROUP_SECONDS of wall clock), and the lease
    proved before every write: what a day boundary sees is then exact."""
    monkeypatch.setattr(runtime, "GROUP_DAYS", 1)
    monkeypatch.setattr(runtime, "LEASE_PROOF_SECONDS", 0.0)


def step_ids(engine: Engine, job_id: int) -> list[int]:
    return [s.id for s in steps_of(engine, job_id) if s.id is not None]


def ticket(
    settings: Settings, engine: Engine, job_id: int, ordinal: int, clock: Clock
) -> StepTicket:
    """The ticket of the job's step `ordinal` for the lease holder of epoch 1."""
    return StepTicket(settings, job_id, step_ids(engine, job_id)[ordinal], 1, clock)


def run(settings: Settings, job_id: int, epoch: int, clock: Clock, runner) -> JobStatus | None:  # type: ignore[no-untyped-def]
    return runtime.execute(
        settings, job_id=job_id, epoch=epoch, executor=InlineExecutor(runner), clock=clock
    )


def test_a_steps_days_are_checkpointed_under_the_tickets_epoch(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 3), clock)
    runner, days_seen = CountingRunner(), []
    clock.advance(5)
    done = runtime.run_step_days(
        ticket(settings, engine, job_id, 0, clock),
        stage_runner=runner,
        on_day=lambda: days_seen.append(len(runner.calls)),
    )
    days = [DAY1 + timedelta(days=n) for n in range(3)]
    assert done == 3 and runner.calls == [("chat", d, Stage.export) for d in days]
    assert len(days_seen) == 3  # once per committed day
    rows = checkpoints(engine, job_id)
    assert [(c.day, c.stage, c.lease_epoch, c.created_at) for c in rows] == [
        (d, Stage.export, 1, clock()) for d in days
    ]
    assert [(c.input_digest, c.output_digest, c.items) for c in rows] == [
        (f"in-export-{d}", f"out-export-{d}", d.day) for d in days
    ]
    job = job_row(engine, job_id)
    assert (job.cells_done, job.heartbeat_at) == (3, clock())  # the commit heartbeats
    with Session(engine) as session:
        logged = session.exec(select(LogRecord).where(LogRecord.event == "checkpoint")).all()
        assert sorted(r.day for r in logged) == days  # type: ignore[type-var]


def test_a_step_does_only_its_days_without_a_checkpoint(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 4, [Stage.embed]), clock)
    first = CountingRunner()

    def failing_on_day_three(
        ctx: StageContext, stage: Stage, source: str, day: date
    ) -> StageResult:
        if day == DAY1 + timedelta(days=2):
            raise StageFailed(stage, source, day, "disk on fire")
        return first(ctx, stage, source, day)

    with pytest.raises(StepFailed, match="disk on fire"):
        runtime.run_step_days(
            ticket(settings, engine, job_id, 0, clock), stage_runner=failing_on_day_three
        )
    kept = [c.day for c in checkpoints(engine, job_id)]
    assert kept == [DAY1, DAY1 + timedelta(days=1)]  # the days before the failure committed

    again = CountingRunner()
    assert (
        runtime.run_step_days(ticket(settings, engine, job_id, 0, clock), stage_runner=again) == 2
    )
    assert again.calls == [("chat", DAY1 + timedelta(days=n), Stage.embed) for n in (2, 3)]
    assert (
        runtime.run_step_days(ticket(settings, engine, job_id, 0, clock), stage_runner=again) == 0
    )
    assert len(again.calls) == 2 and len(checkpoints(engine, job_id)) == 4


def test_a_ticket_of_an_old_epoch_runs_no_day(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    with session_scope(engine) as session:  # another worker took the job over
        session.execute(
            update(IngestionJob).where(IngestionJob.id == job_id).values(lease_epoch=2)  # type: ignore[arg-type]
        )
    runner = CountingRunner()
    with pytest.raises(LeaseLost):
        runtime.run_step_days(ticket(settings, engine, job_id, 0, clock), stage_runner=runner)
    assert runner.calls == [] and checkpoints(engine, job_id) == []


def test_execute_runs_the_steps_in_order_and_ends_the_job_succeeded(
    settings, engine, clock
) -> None:
    wanted = cells("chat", 9)
    job_id = claimed_job(settings, engine, wanted, clock)
    runner = CountingRunner()
    clock.advance(30)
    assert run(settings, job_id, 1, clock, runner) is JobStatus.succeeded

    week, rest = range(7), range(7, 9)
    expected: list[Cell] = [
        ("chat", DAY1 + timedelta(days=n), stage)
        for chunk in (week, rest)
        for stage in Stage
        for n in chunk
    ]
    assert runner.calls == expected  # export, embed, publish per chunk of days
    job = job_row(engine, job_id)
    assert (job.status, job.cells_done, job.finished_at, job.error) == (
        JobStatus.succeeded,
        27,
        clock(),
        None,
    )
    assert {s.status for s in steps_of(engine, job_id)} == {StepStatus.succeeded}
    assert claimed_cells(engine, job_id) == set()
    assert {(c.source, c.day, c.stage) for c in checkpoints(engine, job_id)} == set(wanted)


def test_a_failed_day_fails_the_job_and_resume_does_only_the_rest(settings, engine, clock) -> None:
    wanted = cells("chat", 3)
    job_id = claimed_job(settings, engine, wanted, clock)
    bad: Cell = ("chat", DAY1 + timedelta(days=1), Stage.embed)
    runner = CountingRunner()

    def failing_once(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        if (source, day, stage) == bad and bad not in runner.calls:
            runner.calls.append(bad)
            raise StageFailed(stage, source, day, "disk on fire")
        return runner(ctx, stage, source, day)

    assert run(settings, job_id, 1, clock, failing_once) is JobStatus.failed
    job = job_row(engine, job_id)
    assert job.status is JobStatus.failed and "disk on fire" in (job.error or "")
    assert job.cells_done == 4  # the three exports and the embed before the bad day
    statuses = [s.status for s in steps_of(engine, job_id)]
    assert statuses == [StepStatus.succeeded, StepStatus.failed, StepStatus.pending]
    assert claimed_cells(engine, job_id) == set()

    with session_scope(engine) as session:
        jobs.prepare_resume(session, job_id=job_id, now=clock(), lease_timeout=60)
    claimed = leases.claim(settings, owner="again", job_id=job_id, now=clock())
    assert claimed == (job_id, 2)
    assert run(settings, job_id, 2, clock, failing_once) is JobStatus.succeeded
    redone = [c for c in runner.calls if c == bad]
    assert len(redone) == 2  # the failed attempt, then the resumed one
    assert sorted(set(runner.calls)) == sorted(wanted) and len(runner.calls) == len(wanted) + 1
    rows = checkpoints(engine, job_id)
    assert sorted((c.day, c.stage) for c in rows if c.lease_epoch == 1) == sorted(
        [(d, Stage.export) for _, d, _ in cells("chat", 3, [Stage.export])] + [(DAY1, Stage.embed)]
    )
    assert len(rows) == len(wanted) and job_row(engine, job_id).cells_done == len(wanted)


def test_a_cancel_request_stops_the_job_at_the_next_day_boundary(
    settings, engine, clock, every_day_commits
) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 5, [Stage.export]), clock)
    runner = CountingRunner()

    def cancel_on_day_two(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        if len(runner.calls) == 1:  # pressed while the second day runs
            with session_scope(engine) as session:
                jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=60)
        return runner(ctx, stage, source, day)

    assert run(settings, job_id, 1, clock, cancel_on_day_two) is JobStatus.cancelled
    assert [d for _, d, _ in runner.calls] == [DAY1, DAY1 + timedelta(days=1)]
    assert [c.day for c in checkpoints(engine, job_id)] == [DAY1, DAY1 + timedelta(days=1)]
    job = job_row(engine, job_id)
    assert (job.status, job.cells_done) == (JobStatus.cancelled, 2)
    assert [s.status for s in steps_of(engine, job_id)] == [StepStatus.cancelled]
    assert claimed_cells(engine, job_id) == set()


def test_ctrl_c_ends_the_job_cancelled_not_interrupted_keeping_its_checkpoints(
    settings, engine, clock, every_day_commits
) -> None:
    """`interrupted` is the status of a job whose lease expired; a Ctrl-C in the foreground
    is the user's own stop: cancelled, resumable, and the caller still sees the Ctrl-C."""
    job_id = claimed_job(settings, engine, cells("chat", 4, [Stage.export]), clock)
    runner = CountingRunner()

    def ctrl_c_on_day_three(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        if len(runner.calls) == 2:
            raise KeyboardInterrupt
        return runner(ctx, stage, source, day)

    with pytest.raises(KeyboardInterrupt):
        run(settings, job_id, 1, clock, ctrl_c_on_day_three)
    job = job_row(engine, job_id)
    assert (job.status, job.cells_done, job.lease_epoch) == (JobStatus.cancelled, 2, 1)
    assert [c.day for c in checkpoints(engine, job_id)] == [DAY1, DAY1 + timedelta(days=1)]
    assert [s.status for s in steps_of(engine, job_id)] == [StepStatus.cancelled]
    assert claimed_cells(engine, job_id) == set()


def test_a_ctrl_c_that_spoils_a_pooled_connection_still_cancels_the_job(
    settings, engine, clock, every_day_commits
) -> None:
    """A Ctrl-C that cuts a query short can leave its connection unusable in the pool
    (psycopg: "can't change 'autocommit' now: connection in transaction status ACTIVE",
    test_interrupt on PostgreSQL under load): the job was then failed with that error. Here
    every connection opened before the Ctrl-C is spoiled; the job is still cancelled."""
    job_id = claimed_job(settings, engine, cells("chat", 4, [Stage.export]), clock)
    runner = CountingRunner()
    opened: list[object] = []
    spoiled: set[int] = set()

    def on_connect(dbapi_connection: object, record: object) -> None:
        opened.append(dbapi_connection)

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if id(conn.connection.dbapi_connection) in spoiled:
            raise ProgrammingError(statement, parameters, Exception("connection left ACTIVE"))

    def ctrl_c_on_day_three(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        if len(runner.calls) == 2:
            spoiled.update(id(c) for c in opened)
            raise KeyboardInterrupt
        return runner(ctx, stage, source, day)

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # every connection from now on is seen opening
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(settings, job_id, 1, clock, ctrl_c_on_day_three)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "connect", on_connect)
    assert spoiled
    job = job_row(engine, job_id)
    assert (job.status, job.cells_done, job.error) == (
        JobStatus.cancelled,
        2,
        "cancelled from the terminal (Ctrl-C)",
    )
    assert claimed_cells(engine, job_id) == set()


def test_a_cancel_seen_before_a_steps_first_day_raises_cancel_requested(
    settings, engine, clock
) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    with session_scope(engine) as session:
        jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=60)
    runner = CountingRunner()
    with pytest.raises(CancelRequested):
        runtime.run_step_days(ticket(settings, engine, job_id, 0, clock), stage_runner=runner)
    assert runner.calls == []


def test_a_step_whose_days_are_all_checkpointed_is_skipped(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    runtime.run_step_days(ticket(settings, engine, job_id, 0, clock), stage_runner=CountingRunner())
    runner = CountingRunner()
    assert run(settings, job_id, 1, clock, runner) is JobStatus.succeeded
    assert {stage for _, _, stage in runner.calls} == {Stage.embed, Stage.publish}
    statuses = [s.status for s in steps_of(engine, job_id)]
    assert statuses == [StepStatus.skipped, StepStatus.succeeded, StepStatus.succeeded]
    assert job_row(engine, job_id).cells_done == 6


def test_a_zombie_worker_is_fenced_after_its_lease_expired_and_another_took_over(
    settings, engine, clock, every_day_commits
) -> None:
    """The worker freezes during its second day for longer than the lease; the job is found
    interrupted, resumed and claimed by another worker; then the zombie wakes: its artifact
    write and its checkpoint are refused, and the job is the new worker's."""
    wanted = cells("chat", 4, [Stage.export])
    job_id = claimed_job(settings, engine, wanted, clock)
    wrote: list[tuple[int, date]] = []
    zombie_calls = CountingRunner()

    def freezes_on_day_two(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        result = zombie_calls(ctx, stage, source, day)
        if len(zombie_calls.calls) == 2:
            clock.advance(settings.lease_timeout + 1)
            with session_scope(engine) as session:
                assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == [
                    job_id
                ]
                assert jobs.get_job(session, job_id).status is JobStatus.interrupted
            with session_scope(engine) as session:
                jobs.prepare_resume(session, job_id=job_id, now=clock(), lease_timeout=60)
            assert leases.claim(settings, owner="other", job_id=job_id, now=clock()) == (
                job_id,
                3,
            )
        ctx.before_write()  # as a stage does before it replaces an artifact
        wrote.append((1, day))
        return result

    assert run(settings, job_id, 1, clock, freezes_on_day_two) is None  # lost the lease
    assert wrote == [(1, DAY1)]  # day two's write was refused
    assert [(c.day, c.lease_epoch) for c in checkpoints(engine, job_id)] == [(DAY1, 1)]
    job = job_row(engine, job_id)
    assert (job.status, job.lease_epoch, job.lease_owner) == (JobStatus.running, 3, "other")

    new_holder = CountingRunner()
    assert run(settings, job_id, 3, clock, new_holder) is JobStatus.succeeded
    assert [d for _, d, _ in new_holder.calls] == [DAY1 + timedelta(days=n) for n in (1, 2, 3)]
    assert [(c.day, c.lease_epoch) for c in checkpoints(engine, job_id)] == [(DAY1, 1)] + [
        (DAY1 + timedelta(days=n), 3) for n in (1, 2, 3)
    ]
    assert job_row(engine, job_id).cells_done == 4


def test_a_remote_task_proves_the_lease_without_keeping_it_alive(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2, [Stage.publish]), clock)
    claimed_at = clock()
    clock.advance(20)
    step_id = step_ids(engine, job_id)[0]
    remote = StepTicket(settings, job_id, step_id, 1, clock, remote=True)
    assert runtime.run_step_days(remote, stage_runner=CountingRunner()) == 2
    job = job_row(engine, job_id)
    assert (job.cells_done, job.heartbeat_at) == (2, claimed_at)  # no heartbeat from a task
    assert [c.lease_epoch for c in checkpoints(engine, job_id)] == [1, 1]


def test_a_remote_task_of_a_job_no_longer_leased_writes_nothing(settings, engine, clock) -> None:
    """A job that ended under the same epoch (its holder failed it, so nothing bumped the
    epoch) ends its remote tasks' writes: they prove a still-leased job, not the epoch only."""
    job_id = claimed_job(settings, engine, cells("chat", 2, [Stage.publish]), clock)
    with session_scope(engine) as session:
        session.execute(
            update(IngestionJob)
            .where(IngestionJob.id == job_id)  # type: ignore[arg-type]
            .values(status=JobStatus.failed)
        )
    step_id = step_ids(engine, job_id)[0]
    runner = CountingRunner()
    with pytest.raises(LeaseLost):
        runtime.run_step_days(
            StepTicket(settings, job_id, step_id, 1, clock, remote=True), stage_runner=runner
        )
    assert runner.calls == [] and checkpoints(engine, job_id) == []
