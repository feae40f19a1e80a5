"""jobs.py on its own: a job made from a plan holds its cells and its steps; cancel, lease
expiry and resume move it as the states table says and release or take back its cells.
(The claim-rollback paths are in test_claims.py, the service's stuck-job paths in
test_stuck_jobs.py.)"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, update
from sqlmodel import Session, select

from softcopy.db import session_scope
from softcopy.errors import Conflict, NotFound
from softcopy.ingestion import jobs, leases
from softcopy.ingestion.models import Checkpoint, IngestionJob, IngestionPlan, JobStep, LogRecord
from softcopy.ingestion.states import JobStatus, PlanStatus, Stage, StepStatus
from softcopy.ingestion.transitions import LeaseLost, fence, move_job, move_step
from tests.ingestion.jobkit import (
    DAY1,
    Clock,
    cells,
    claimed_cells,
    claimed_job,
    hand_plan,
    job_row,
    queue_job,
    steps_of,
)

TIMEOUT = 60.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_new_job_is_queued_with_its_steps_its_cells_claimed_and_its_plan_applied(
    engine, clock
) -> None:
    wanted = cells("chat", 9) + cells("mail", 2, [Stage.publish])
    job_id = queue_job(engine, wanted, clock, chunk_days=7)

    job = job_row(engine, job_id)
    assert (job.status, job.cells_total, job.cells_done) == (JobStatus.queued, 29, 0)
    assert job.queued_at == clock() and job.lease_epoch == 0
    assert claimed_cells(engine, job_id) == set(wanted)
    steps = [(s.ordinal, s.stage, s.source, s.days) for s in steps_of(engine, job_id)]
    week = [(DAY1 + timedelta(days=n)).isoformat() for n in range(7)]
    rest = [(DAY1 + timedelta(days=n)).isoformat() for n in (7, 8)]
    assert steps == [
        (0, Stage.export, "chat", week),
        (1, Stage.embed, "chat", week),
        (2, Stage.publish, "chat", week),
        (3, Stage.export, "chat", rest),
        (4, Stage.embed, "chat", rest),
        (5, Stage.publish, "chat", rest),
        (6, Stage.publish, "mail", week[:2]),
    ]
    assert {s.status for s in steps_of(engine, job_id)} == {StepStatus.pending}
    with Session(engine) as session:
        assert session.get(IngestionPlan, job.plan_id).status is PlanStatus.applied  # type: ignore[union-attr]
        created = session.exec(select(LogRecord).where(LogRecord.event == "job.created")).one()
        assert created.job_id == job_id and created.fields["executor"] == "inline"


def test_a_plan_that_was_already_run_makes_no_second_job(engine, clock) -> None:
    with session_scope(engine) as session:
        plan = hand_plan(session, cells("chat", 1), clock())
        jobs.create_job(
            session, plan=plan, executor="inline", chunk_days=7, now=clock(), lease_timeout=60
        )
        with pytest.raises(Conflict, match=f"plan {plan.id} was already run"):
            jobs.create_job(
                session, plan=plan, executor="inline", chunk_days=7, now=clock(), lease_timeout=60
            )


def test_a_cell_of_a_live_job_is_refused_naming_its_holder_but_another_stage_is_free(
    engine, clock
) -> None:
    holder = queue_job(engine, cells("chat", 3, [Stage.export]), clock)
    other_stage = queue_job(engine, cells("chat", 3, [Stage.embed]), clock)
    assert claimed_cells(engine, other_stage) == set(cells("chat", 3, [Stage.embed]))
    with pytest.raises(Conflict, match=f"chat {DAY1 + timedelta(days=2)} export is held by job"):
        queue_job(engine, cells("chat", 1, [Stage.export], first=DAY1 + timedelta(days=2)), clock)
    assert claimed_cells(engine, holder) == set(cells("chat", 3, [Stage.export]))


def test_held_cells_names_the_live_job_of_each_cell_and_forgets_ended_ones(engine, clock) -> None:
    first = queue_job(engine, cells("chat", 2, [Stage.export]), clock)
    second = queue_job(engine, cells("mail", 1, [Stage.publish]), clock)
    with Session(engine) as session:
        held = jobs.held_cells(session, ["chat", "mail", "notes"])
        assert held == {
            ("chat", DAY1, Stage.export): first,
            ("chat", DAY1 + timedelta(days=1), Stage.export): first,
            ("mail", DAY1, Stage.publish): second,
        }
        assert jobs.held_cells(session, ["mail"]) == {("mail", DAY1, Stage.publish): second}
    with session_scope(engine) as session:
        jobs.cancel(session, job_id=first, force=False, now=clock(), lease_timeout=TIMEOUT)
    with Session(engine) as session:
        assert jobs.held_cells(session, ["chat", "mail"]) == {("mail", DAY1, Stage.publish): second}


def test_a_queued_job_nobody_claimed_within_the_lease_gives_its_cells_to_a_new_job(
    engine, clock
) -> None:
    wanted = cells("chat", 2)
    waiting = queue_job(engine, wanted, clock, timeout=TIMEOUT)
    clock.advance(TIMEOUT)  # waited exactly the timeout: still its cells
    with pytest.raises(Conflict, match=f"held by job {waiting} \\(queued\\)"):
        queue_job(engine, wanted, clock, timeout=TIMEOUT)
    clock.advance(1)
    taker = queue_job(engine, wanted, clock, timeout=TIMEOUT)

    gave_up = job_row(engine, waiting)
    assert gave_up.status is JobStatus.interrupted
    assert f"job {taker} took its cells" in (gave_up.error or "")
    assert claimed_cells(engine, waiting) == set()
    assert claimed_cells(engine, taker) == set(wanted)


def test_a_running_job_keeps_its_cells_however_long_ago_it_was_queued(
    settings, engine, clock
) -> None:
    wanted = cells("chat", 1)
    running = claimed_job(settings, engine, wanted, clock)
    clock.advance(settings.lease_timeout * 10)
    with session_scope(engine) as session:  # it heartbeats: its worker is alive
        fence(session, job_id=running, epoch=1, now=clock())
    with pytest.raises(Conflict, match=f"held by job {running} \\(running\\)"):
        queue_job(engine, wanted, clock, timeout=settings.lease_timeout)
    assert job_row(engine, running).status is JobStatus.running


def test_cancel_of_a_queued_job_ends_it_at_once_with_its_steps_and_cells(engine, clock) -> None:
    job_id = queue_job(engine, cells("chat", 2), clock)
    with session_scope(engine) as session:
        job = jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=TIMEOUT)
        assert job.status is JobStatus.cancelled
    assert job_row(engine, job_id).finished_at == clock()
    assert {s.status for s in steps_of(engine, job_id)} == {StepStatus.cancelled}
    assert claimed_cells(engine, job_id) == set()


def test_cancel_of_a_running_job_asks_its_worker_and_keeps_its_cells(
    settings, engine, clock
) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    with session_scope(engine) as session:
        jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=TIMEOUT)
    job = job_row(engine, job_id)
    assert (job.status, job.cancel_requested, job.lease_epoch) == (JobStatus.cancelling, True, 1)
    assert claimed_cells(engine, job_id) == set(cells("chat", 2))
    with session_scope(engine) as session:  # what the worker learns at its next day boundary
        assert fence(session, job_id=job_id, epoch=1, now=clock()) is True


def test_force_cancel_fences_the_worker_out_and_releases_the_cells(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    with session_scope(engine) as session:  # the worker is this process: it is not signalled
        jobs.cancel(session, job_id=job_id, force=True, now=clock(), lease_timeout=TIMEOUT)
    job = job_row(engine, job_id)
    assert (job.status, job.error, job.lease_epoch) == (
        JobStatus.cancelled,
        "cancelled by force",
        2,
    )
    assert {s.status for s in steps_of(engine, job_id)} == {StepStatus.cancelled}
    assert claimed_cells(engine, job_id) == set()
    with session_scope(engine) as session, pytest.raises(LeaseLost):
        fence(session, job_id=job_id, epoch=1, now=clock())


@pytest.mark.parametrize("ended", [JobStatus.succeeded, JobStatus.failed, JobStatus.interrupted])
def test_cancel_of_an_ended_job_is_refused(settings, engine, clock, ended) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    with session_scope(engine) as session:
        move_job(session, jobs.get_job(session, job_id), ended, now=clock())
    with session_scope(engine) as session, pytest.raises(Conflict, match=f"is {ended}"):
        jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=TIMEOUT)


def test_cancel_of_an_unknown_job_is_not_found(engine, clock) -> None:
    with session_scope(engine) as session, pytest.raises(NotFound):
        jobs.cancel(session, job_id=404, force=False, now=clock(), lease_timeout=TIMEOUT)


def test_a_lease_is_expired_only_once_its_heartbeat_is_older_than_the_timeout(
    settings, engine, clock
) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    clock.advance(settings.lease_timeout)  # exactly the timeout: not yet
    with session_scope(engine) as session:
        assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == []
    clock.advance(0.001)
    with session_scope(engine) as session:
        assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == [job_id]


def test_a_heartbeat_moves_the_expiry_forward(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    clock.advance(settings.lease_timeout - 1)
    with session_scope(engine) as session:
        fence(session, job_id=job_id, epoch=1, now=clock())
    clock.advance(settings.lease_timeout - 1)  # long after the claim, soon after the beat
    with session_scope(engine) as session:
        assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == []
    assert job_row(engine, job_id).status is JobStatus.running


@pytest.mark.parametrize(
    ("leased", "ends"),
    [(JobStatus.running, JobStatus.interrupted), (JobStatus.cancelling, JobStatus.cancelled)],
)
def test_an_expired_lease_ends_the_job_fences_it_and_releases_its_cells(
    settings, engine, clock, leased, ends
) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    if leased is JobStatus.cancelling:
        with session_scope(engine) as session:
            jobs.cancel(session, job_id=job_id, force=False, now=clock(), lease_timeout=TIMEOUT)
    clock.advance(settings.lease_timeout + 1)
    with session_scope(engine) as session:
        assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == [job_id]

    job = job_row(engine, job_id)
    assert (job.status, job.lease_epoch, job.finished_at) == (ends, 2, clock())
    assert job.error == "lease expired (the worker stopped heartbeating)"
    assert claimed_cells(engine, job_id) == set()
    with Session(engine) as session:
        moves = session.exec(
            select(LogRecord).where(LogRecord.job_id == job_id, LogRecord.event == "job.transition")
        ).all()
        assert moves[-1].fields == {"before": str(leased), "after": str(ends)}
        assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == []


def test_an_expiry_loses_to_a_heartbeat_that_lands_after_it_read_the_job(
    settings, engine, clock
) -> None:
    """The worker was only slow: its heartbeat commits between expire_leases reading the
    stale row and ending the job. The job stays running under its epoch, with its cells."""
    wanted = cells("chat", 2)
    job_id = claimed_job(settings, engine, wanted, clock)
    clock.advance(settings.lease_timeout + 1)
    beats: list[object] = []

    def heartbeat_first(conn, cursor, statement: str, *args: object) -> None:  # type: ignore[no-untyped-def]
        if not beats and statement.lstrip().upper().startswith("UPDATE INGESTION_JOB"):
            beats.append(clock())
            with session_scope(engine) as other:  # the worker, on its own connection
                fence(other, job_id=job_id, epoch=1, now=clock())

    event.listen(engine, "before_cursor_execute", heartbeat_first)
    try:
        with session_scope(engine) as session:
            assert jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout) == []
    finally:
        event.remove(engine, "before_cursor_execute", heartbeat_first)
    assert beats == [clock()]  # the race happened
    job = job_row(engine, job_id)
    assert (job.status, job.lease_epoch, job.heartbeat_at) == (JobStatus.running, 1, clock())
    assert claimed_cells(engine, job_id) == set(wanted)


def test_an_interrupted_jobs_worker_can_no_longer_write(settings, engine, clock) -> None:
    """The zombie: its worker wakes after the expiry and writes under its old epoch, from
    the job row it read while it held the lease."""
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    seen_by_zombie = job_row(engine, job_id)
    clock.advance(settings.lease_timeout + 1)
    with session_scope(engine) as session:
        jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout)
    with session_scope(engine) as session:
        with pytest.raises(LeaseLost):
            fence(session, job_id=job_id, epoch=1, now=clock(), cells_done=1)
        session.add(seen_by_zombie)
        assert seen_by_zombie.status is JobStatus.running
        with pytest.raises(LeaseLost):
            move_job(session, seen_by_zombie, JobStatus.succeeded, now=clock(), epoch=1)
    job = job_row(engine, job_id)
    assert (job.status, job.cells_done, job.heartbeat_at) == (
        JobStatus.interrupted,
        0,
        clock() - timedelta(seconds=settings.lease_timeout + 1),
    )


def test_resume_queues_an_interrupted_job_claiming_only_its_unfinished_cells(
    settings, engine, clock
) -> None:
    wanted = cells("chat", 3)
    job_id = claimed_job(settings, engine, wanted, clock)
    first, *_ = steps_of(engine, job_id)  # export of the three days
    with session_scope(engine) as session:
        step = session.get(JobStep, first.id)
        assert step is not None
        move_step(session, step, StepStatus.running, now=clock())
        for day in step.days[:2]:  # two of its days were done before the worker died
            session.add(
                Checkpoint(
                    step_id=step.id,
                    job_id=job_id,
                    source="chat",
                    stage=Stage.export,
                    day=date.fromisoformat(day),
                    input_digest="i",
                    output_digest="o",
                    items=1,
                    skipped=0,
                    lease_epoch=1,
                    created_at=clock(),
                )
            )
    clock.advance(settings.lease_timeout + 1)
    with session_scope(engine) as session:
        jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout)
    with session_scope(engine) as session:
        jobs.prepare_resume(session, job_id=job_id, now=clock(), lease_timeout=TIMEOUT)

    job = job_row(engine, job_id)
    assert (job.status, job.error, job.queued_at, job.finished_at) == (
        JobStatus.queued,
        None,
        clock(),
        None,
    )
    done = {("chat", DAY1, Stage.export), ("chat", DAY1 + timedelta(days=1), Stage.export)}
    assert claimed_cells(engine, job_id) == set(wanted) - done
    assert {s.status for s in steps_of(engine, job_id)} == {StepStatus.pending}
    assert leases.claim(settings, owner="next", job_id=job_id, now=clock()) == (job_id, 3)


def test_resume_of_a_cell_another_job_took_meanwhile_is_refused(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 2), clock)
    clock.advance(settings.lease_timeout + 1)
    with session_scope(engine) as session:
        jobs.expire_leases(session, now=clock(), timeout=settings.lease_timeout)
    taker = queue_job(engine, cells("chat", 1, [Stage.embed]), clock)
    with session_scope(engine) as session, pytest.raises(Conflict, match=f"held by job {taker}"):
        jobs.prepare_resume(session, job_id=job_id, now=clock(), lease_timeout=TIMEOUT)
    assert job_row(engine, job_id).status is JobStatus.interrupted


@pytest.mark.parametrize("status", [JobStatus.queued, JobStatus.running, JobStatus.succeeded])
def test_only_failed_cancelled_or_interrupted_jobs_resume(settings, engine, clock, status) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    with session_scope(engine) as session:
        session.execute(
            update(IngestionJob).where(IngestionJob.id == job_id).values(status=status)  # type: ignore[arg-type]
        )
    hint = "already finished" if status is JobStatus.succeeded else "only failed, cancelled"
    with session_scope(engine) as session, pytest.raises(Conflict, match=hint):
        jobs.prepare_resume(session, job_id=job_id, now=clock(), lease_timeout=TIMEOUT)
    assert job_row(engine, job_id).status is status
