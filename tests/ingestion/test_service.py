"""The control plane through its service façade, in process, on a demo home."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from softcopy.db import session_scope
from softcopy.errors import Conflict, NotFound
from softcopy.ingestion import runtime, service
from softcopy.ingestion.executors import InlineExecutor
from softcopy.ingestion.models import Checkpoint, IngestionJob, LogRecord
from softcopy.ingestion.planner import StalePlan
from softcopy.ingestion.states import (
    CellState,
    FindingKind,
    JobStatus,
    PlanMode,
    Stage,
    StepStatus,
)
from softcopy.memory import index
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stage import StageContext, StageResult, export_path, vectors_path
from softcopy.registry import EXECUTORS
from tests.conftest import DEMO_TODAY

START, END = DEMO_TODAY - timedelta(days=29), DEMO_TODAY
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END
)


def use_executor(monkeypatch: pytest.MonkeyPatch, runner: Callable[..., StageResult]) -> str:
    monkeypatch.setitem(EXECUTORS, "test", lambda: InlineExecutor(stage_runner=runner))
    return "test"


def states(report: service.CoverageReport) -> set[CellState]:
    return {c.state for c in report.cells}


def test_backfill_makes_everything_current_and_verifies(ctx: service.Context) -> None:
    before = service.coverage(ctx)
    assert states(before) == {CellState.missing}
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    job = outcome.job.job
    assert job.cells_done == job.cells_total == len(before.cells)
    assert all(s.step.status is StepStatus.succeeded for s in outcome.job.steps)
    assert states(service.coverage(ctx)) == {CellState.current}
    assert service.verify(ctx, job_id=job.id).ok  # type: ignore[arg-type]
    again = service.run(ctx, options=BACKFILL)
    assert again.job is None and again.plan.cells == 0


def test_steps_are_chunks_with_export_before_embed_before_publish(ctx: service.Context) -> None:
    outcome = service.run(ctx, options=BACKFILL, chunk_days=10)
    assert outcome.job is not None
    steps = [s.step for s in outcome.job.steps]
    for step in steps:
        assert 0 < len(step.days) <= 10
    # a source's steps hold runs of 10 of its days with work, wherever they fall
    for source in {s.source for s in steps}:
        exports = [s for s in steps if s.source == source and s.stage is Stage.export]
        assert all(len(s.days) == 10 for s in exports[:-1])
    for source in {s.source for s in steps}:
        mine = [s for s in steps if s.source == source]
        for first, second in itertools.pairwise(mine):
            assert (first.start_day, list(Stage).index(first.stage)) < (
                second.start_day,
                list(Stage).index(second.stage),
            )


def test_force_redoes_current_cells(ctx: service.Context) -> None:
    service.run(ctx, options=BACKFILL)
    forced = service.plan(ctx, options=service.PlanOptions(**{**BACKFILL.__dict__, "force": True}))
    assert forced.plan.cells == len(service.coverage(ctx).cells)


def test_stale_plan_is_refused_naming_the_cells(ctx: service.Context) -> None:
    saved = service.plan(ctx, options=BACKFILL)
    note = sorted((ctx.settings.source("notes").path / "Daily").rglob("*.md"))[0]
    note.write_text(note.read_text() + "\nlate thought\n")
    with pytest.raises(StalePlan, match=rf"notes {note.stem} export \(was missing, now missing\)"):
        service.run(ctx, plan_id=saved.plan.id)
    outcome = service.run(ctx, plan_id=saved.plan.id, replan=True)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert outcome.plan.id != saved.plan.id


def test_overlapping_job_is_refused_naming_the_holder(ctx: service.Context) -> None:
    first = service.run(ctx, options=BACKFILL, detach=False, executor="inline", chunk_days=7)
    assert first.job is not None
    forced_options = service.PlanOptions(**{**BACKFILL.__dict__, "force": True})
    queued = service.enqueue(ctx, options=forced_options)  # a queued job holding the cells
    assert queued.job is not None
    holder = queued.job.job
    with pytest.raises(Conflict, match=rf"is held by job {holder.id} \(queued\)"):
        service.run(ctx, options=service.PlanOptions(**{**BACKFILL.__dict__, "force": True}))
    service.cancel(ctx, job_id=holder.id)  # type: ignore[arg-type]
    assert service.show_job(ctx, job_id=holder.id).job.status is JobStatus.cancelled  # type: ignore[arg-type]
    forced = service.run(ctx, options=service.PlanOptions(**{**BACKFILL.__dict__, "force": True}))
    assert forced.job is not None and forced.job.job.status is JobStatus.succeeded


def test_catch_up_picks_new_days_and_late_edits_in_the_lookback(ctx: service.Context) -> None:
    early = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END - timedelta(days=5)
    )
    service.run(ctx, options=early)
    daily = {
        date.fromisoformat(p.stem): p
        for p in (ctx.settings.source("notes").path / "Daily").rglob("*.md")
    }
    published = [
        c.day
        for c in service.coverage(ctx).cells
        if c.source == "notes"
        and c.stage is Stage.publish
        and c.state is CellState.current
        and c.day in daily
    ]
    late, old = max(published), min(published)
    for day in (late, old):  # a late edit inside the lookback, and one far outside it
        daily[day].write_text(daily[day].read_text() + "\nedited later\n")
    lookback = (DEMO_TODAY - late).days
    view = service.plan(
        ctx, options=service.PlanOptions(mode=PlanMode.catch_up_recent, lookback_days=lookback)
    )
    cells = {(i.source, i.day, i.stage): i.state for i in view.items}
    assert cells[("notes", late, Stage.export)] is CellState.stale
    assert ("notes", old, Stage.export) not in cells
    new_days = {d for (_, d, _) in cells if d > END - timedelta(days=5)}
    assert new_days and all(d <= DEMO_TODAY for d in new_days)


def test_resume_redoes_nothing_checkpointed(ctx: service.Context, monkeypatch) -> None:
    calls: list[tuple[Stage, str, date]] = []
    fail_at = {"n": 25}

    def flaky(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        if len(calls) == fail_at["n"]:
            fail_at["n"] = -1
            raise RuntimeError("disk on fire")
        calls.append((stage, source, day))
        return run_stage(c, stage, source, day)

    outcome = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, flaky))
    assert outcome.job is not None
    job = outcome.job.job
    assert job.status is JobStatus.failed and "disk on fire" in (job.error or "")
    assert job.cells_done == 25
    resumed = service.resume(ctx, job_id=job.id)  # type: ignore[arg-type]
    assert resumed.job.status is JobStatus.succeeded
    assert len(calls) == len(set(calls)) == job.cells_total
    assert service.verify(ctx, job_id=job.id).ok  # type: ignore[arg-type]


DAY_SECONDS = 0.02


def test_cancel_lands_at_the_next_day_boundary(ctx: service.Context, monkeypatch) -> None:
    """Cancel is pressed from another thread once 5 days are checkpointed; it lands when the
    group of days in flight commits: at most one group (GROUP_SECONDS of work) more."""
    requested_at: list[int] = []

    def press_cancel() -> None:
        while True:
            with Session(ctx.engine) as session:
                done = len(session.exec(select(Checkpoint)).all())
                job_id = session.exec(select(IngestionJob.id)).first()
            if done >= 5 and job_id is not None:
                requested_at.append(done)
                service.cancel(ctx, job_id=job_id)
                return
            time.sleep(0.005)

    def slow(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        time.sleep(DAY_SECONDS)
        return run_stage(c, stage, source, day)

    presser = threading.Thread(target=press_cancel)
    presser.start()
    outcome = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, slow))
    presser.join()
    assert outcome.job is not None
    job = outcome.job.job
    assert job.status is JobStatus.cancelled
    one_group = 1 + math.ceil(runtime.GROUP_SECONDS / DAY_SECONDS)  # days a group can hold
    assert requested_at[0] <= job.cells_done <= requested_at[0] + one_group < job.cells_total
    statuses = {s.step.status for s in outcome.job.steps}
    assert StepStatus.cancelled in statuses and statuses <= {
        StepStatus.succeeded,
        StepStatus.cancelled,
    }
    resumed = service.resume(ctx, job_id=job.id)  # type: ignore[arg-type]
    assert resumed.job.status is JobStatus.succeeded and resumed.job.cells_done == job.cells_total


def test_queued_job_cancels_at_once_and_resume_of_finished_job_is_refused(ctx) -> None:
    outcome = service.enqueue(ctx, options=BACKFILL)
    assert outcome.job is not None
    queued = outcome.job.job
    view = service.cancel(ctx, job_id=queued.id)  # type: ignore[arg-type]
    assert view.job.status is JobStatus.cancelled
    assert {s.step.status for s in view.steps} == {StepStatus.cancelled}
    done = service.resume(ctx, job_id=queued.id)  # type: ignore[arg-type]
    assert done.job.status is JobStatus.succeeded
    with pytest.raises(Conflict, match="already finished"):
        service.resume(ctx, job_id=queued.id)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        service.resume(ctx, job_id=999)


def test_a_worker_that_lost_its_lease_writes_nothing(ctx: service.Context, monkeypatch) -> None:
    seen: list[date] = []

    def taken_over(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        seen.append(day)
        if len(seen) == 3:  # another worker fences this one while it works on day 3
            with session_scope(ctx.engine) as other:  # as a takeover's claim bumps it
                other.execute(update(IngestionJob).values(lease_epoch=IngestionJob.lease_epoch + 1))
        return run_stage(c, stage, source, day)

    outcome = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, taken_over))
    assert outcome.job is not None
    assert outcome.job.job.status is JobStatus.running  # the new holder owns the job now
    with Session(ctx.engine) as session:
        done = [c.day for c in session.exec(select(Checkpoint)).all()]
    # day 3 was never checkpointed; days 1 and 2 only if their group committed before the
    # fence (days commit in groups: runtime.GROUP_SECONDS)
    assert seen[2] not in done and set(done) <= set(seen[:2])


def test_verify_and_reconcile_find_what_changed(ctx: service.Context) -> None:
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None
    job_id = outcome.job.job.id
    assert job_id is not None
    assert service.reconcile(ctx).run.findings_count == 0
    report = service.coverage(ctx)
    days = sorted({c.day for c in report.cells if c.source == "chat"})
    export_path(ctx.settings, "chat", days[0]).unlink()
    vectors_path(ctx.settings, "chat", days[1]).write_bytes(b"garbage")
    with index.connect(ctx.settings.index_path) as conn:
        conn.execute("DELETE FROM docs WHERE source = 'chat' AND day = ?", (days[2].isoformat(),))
        conn.execute(
            "INSERT INTO docs(source, day, item_id, ts, title, text, content_hash, vector)"
            " VALUES ('chat', '2020-01-01', 'x', '2020-01-01T00:00:00', 't', 'orphan', 'h', x'00')"
        )
    note = sorted((ctx.settings.source("notes").path / "Daily").rglob("*.md"))[-1]
    note.write_text(note.read_text() + "\nedited after publish\n")
    result = service.verify(ctx, job_id=job_id)
    assert not result.ok
    assert {p["day"] for p in result.problems} == {d.isoformat() for d in days[:3]}

    report = service.reconcile(ctx, repair=True)
    kinds = {f.kind for f in report.findings}
    assert kinds == {
        FindingKind.missing_artifact,
        FindingKind.corrupted_artifact,
        FindingKind.missing_index_rows,
        FindingKind.orphan_index_rows,
        FindingKind.source_drift,
    }
    (drift,) = [f for f in report.findings if f.kind is FindingKind.source_drift]
    assert (drift.source, drift.day) == ("notes", date.fromisoformat(note.stem))
    assert "1 edited, 0 added, 0 deleted" in drift.detail
    assert report.run.drift == (FindingKind.source_drift in kinds)
    assert report.repair_plan is not None
    repaired = service.run(ctx, plan_id=report.repair_plan.id)
    assert repaired.job is not None and repaired.job.job.status is JobStatus.succeeded
    assert service.reconcile(ctx).run.findings_count == 0
    assert service.verify(ctx, job_id=repaired.job.job.id).ok  # type: ignore[arg-type]


def test_logs_record_every_transition_and_checkpoint(ctx: service.Context) -> None:
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None
    rows = service.job_logs(ctx, job_id=outcome.job.job.id, limit=10_000)  # type: ignore[arg-type]
    events = [r.event for r in rows]
    assert events.count("checkpoint") == outcome.job.job.cells_total
    assert events.count("job.transition") == 2  # queued → running → succeeded
    assert events.count("step.transition") == 2 * len(outcome.job.steps)
    follow = list(service.follow_logs(ctx, job_id=outcome.job.job.id))  # type: ignore[arg-type]
    assert [r.id for r in follow] == [r.id for r in rows]


def test_failed_use_case_leaves_no_rows(ctx: service.Context) -> None:
    """A run refused after it planned (its cells are held) leaves no plan, snapshot or log."""
    from softcopy.ingestion.models import CoverageSnapshot, IngestionPlan

    held = service.enqueue(ctx, options=BACKFILL)
    assert held.job is not None

    def counts() -> tuple[int, int, int]:
        with Session(ctx.engine) as session:
            return (
                len(session.exec(select(IngestionPlan)).all()),
                len(session.exec(select(CoverageSnapshot)).all()),
                len(session.exec(select(LogRecord)).all()),
            )

    before = counts()
    with pytest.raises(Conflict, match=f"held by job {held.job.job.id}"):
        service.run(ctx, options=service.PlanOptions(**{**BACKFILL.__dict__, "force": True}))
    assert counts() == before


def test_stage_primitives_leave_cells_held_by_a_live_job_alone(ctx: service.Context) -> None:
    from softcopy.memory.runner import run_stages

    held = service.enqueue(ctx, options=BACKFILL)
    assert held.job is not None
    summary = run_stages(
        settings=ctx.settings,
        engine=ctx.engine,
        stages=list(Stage),
        sources=["chat"],
        held=service.held_cells(ctx, sources=["chat"]),
    )
    assert summary.results == []
    assert summary.failures and all(
        f"held by job {held.job.job.id}" in f.error for f in summary.failures
    )
