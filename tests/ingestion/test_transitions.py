"""One transition function per aggregate: every move the tables do not allow is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import Session, select

from softcopy.db import session_scope
from softcopy.ingestion.models import IngestionJob, IngestionPlan, JobStep, LogRecord
from softcopy.ingestion.states import (
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    JobStatus,
    PlanMode,
    PlanStatus,
    Stage,
    StepStatus,
)
from softcopy.ingestion.transitions import IllegalTransition, LeaseLost, fence, move_job, move_step

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def make_job(session: Session, status: JobStatus) -> tuple[IngestionJob, JobStep]:
    plan = IngestionPlan(
        created_at=NOW, mode=PlanMode.backfill_range, status=PlanStatus.applied, fingerprint="f"
    )
    session.add(plan)
    session.flush()
    job = IngestionJob(
        plan_id=plan.id, status=status, executor="inline", chunk_days=7, created_at=NOW
    )
    session.add(job)
    session.flush()
    step = JobStep(
        job_id=job.id,
        ordinal=0,
        stage=Stage.export,
        source="s",
        start_day=date(2026, 3, 1),
        end_day=date(2026, 3, 1),
        days=["2026-03-01"],
        status=StepStatus.pending,
    )
    session.add(step)
    session.flush()
    return job, step


JOB_PAIRS = [(a, b) for a in JobStatus for b in JobStatus]
STEP_PAIRS = [(a, b) for a in StepStatus for b in StepStatus]


@pytest.mark.parametrize(("start", "to"), JOB_PAIRS, ids=[f"{a}->{b}" for a, b in JOB_PAIRS])
def test_job_moves_follow_the_table(engine, start: JobStatus, to: JobStatus) -> None:
    with session_scope(engine) as session:
        job, _ = make_job(session, start)
        if to in JOB_TRANSITIONS[start]:
            move_job(session, job, to, now=NOW)
            assert session.get(IngestionJob, job.id).status is to  # type: ignore[union-attr]
            log = session.exec(select(LogRecord).where(LogRecord.job_id == job.id)).one()
            assert log.fields == {"before": str(start), "after": str(to)}
        else:
            with pytest.raises(IllegalTransition, match=f"is {start}; it cannot become {to}"):
                move_job(session, job, to, now=NOW)


@pytest.mark.parametrize(("start", "to"), STEP_PAIRS, ids=[f"{a}->{b}" for a, b in STEP_PAIRS])
def test_step_moves_follow_the_table(engine, start: StepStatus, to: StepStatus) -> None:
    with session_scope(engine) as session:
        _, step = make_job(session, JobStatus.running)
        step.status = start
        session.add(step)
        session.flush()
        if to in STEP_TRANSITIONS[start]:
            move_step(session, step, to, now=NOW)
            assert session.get(JobStep, step.id).status is to  # type: ignore[union-attr]
        else:
            with pytest.raises(IllegalTransition):
                move_step(session, step, to, now=NOW)


def test_terminal_times_and_resume_clears_them(engine) -> None:
    with session_scope(engine) as session:
        job, _ = make_job(session, JobStatus.queued)
        move_job(session, job, JobStatus.running, now=NOW)
        assert job.started_at == NOW and job.finished_at is None
        move_job(session, job, JobStatus.failed, now=NOW, error="boom")
        assert job.finished_at == NOW and job.error == "boom"
        move_job(session, job, JobStatus.queued, now=NOW)
        assert job.finished_at is None and job.error is None


def test_a_write_with_an_old_epoch_is_rejected(engine) -> None:
    with session_scope(engine) as session:
        job, _ = make_job(session, JobStatus.queued)
        move_job(session, job, JobStatus.running, now=NOW, lease_epoch=1)
        job_id = job.id
    assert job_id is not None
    with session_scope(engine) as session:
        fence(session, job_id=job_id, epoch=1, now=NOW)  # the holder may write
        session.get(IngestionJob, job_id).lease_epoch = 2  # type: ignore[union-attr]
    with session_scope(engine) as session:
        with pytest.raises(LeaseLost):
            fence(session, job_id=job_id, epoch=1, now=NOW)
        job = session.get(IngestionJob, job_id)
        assert job is not None
        with pytest.raises(LeaseLost):
            move_job(session, job, JobStatus.failed, now=NOW, epoch=1)
        assert session.get(IngestionJob, job_id).status is JobStatus.running  # type: ignore[union-attr]
