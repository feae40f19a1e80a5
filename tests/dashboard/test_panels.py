"""The panels over a real demo home and real detached workers: coverage, plan preview and
run, job progress, verify, cancel and resume results in place, reconcile and repair. Service
errors become one readable line in the panel, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from softcopy.dashboard import Dashboard
from softcopy.dashboard.jobs import JobsPanel
from softcopy.dashboard.poller import Poller
from softcopy.ingestion import service
from softcopy.ingestion.models import CoverageSnapshot, IngestionJob, IngestionPlan
from softcopy.ingestion.states import JobStatus, PlanMode
from tests.conftest import DEMO_TODAY

WEEK = (DEMO_TODAY - timedelta(days=6), DEMO_TODAY)


def wait_for(done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def dashboard(ctx: service.Context):
    made = Dashboard(ctx, poll_interval=0)  # the tests call refresh() instead of a thread
    made.coverage.refresh()  # what Show does: rendering alone takes no snapshot
    yield made
    made.close()


def control_rows(ctx: service.Context) -> dict[str, int]:
    with Session(ctx.engine) as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (CoverageSnapshot, IngestionPlan, IngestionJob)
        }


def test_rendering_writes_nothing_and_shows_the_newest_snapshot(ctx: service.Context) -> None:
    empty = control_rows(ctx)
    for _ in range(2):
        board = Dashboard(ctx, poll_interval=0)
        assert board.coverage.cells == [] and "Show takes one" in board.coverage.message
        board.close()
    assert (
        control_rows(ctx)
        == empty
        == {
            "CoverageSnapshot": 0,
            "IngestionPlan": 0,
            "IngestionJob": 0,
        }
    )
    taken = service.coverage(ctx)
    board = Dashboard(ctx, poll_interval=0)
    assert board.coverage.snapshot_id == taken.snapshot.id
    assert len(board.coverage.cells) == len(taken.cells) > 0
    board.close()
    assert control_rows(ctx)["CoverageSnapshot"] == 1


def follow(board: Dashboard, job_id: int) -> str:
    """Refresh the jobs panel as the poller would, until the job ends."""

    def ended() -> bool:
        board.jobs.refresh()
        return board.jobs.detail.status not in {"queued", "running", "cancelling"}

    wait_for(ended)
    assert board.jobs.job_id == job_id
    return board.jobs.detail.status


def test_coverage_draws_every_cell_with_totals(ctx: service.Context, dashboard) -> None:
    panel = dashboard.coverage
    assert panel.message == ""
    cells = panel.cells
    assert cells and sum(panel.totals.values()) == len(cells)
    assert panel.totals["missing"] == len(cells)  # nothing ingested yet
    drawn = [
        int(part[1:])
        for row in panel.heatmap.data["rows"]
        if row["stage"] is not None
        for bucket in row["counts"]
        for part in filter(None, bucket.split(","))
    ]
    assert sum(drawn) == len(cells)  # every cell, in the stage rows
    assert panel.shown_start == min(c.day for c in cells)
    assert panel.shown_end == max(c.day for c in cells)
    assert (dashboard.plan.range_start, dashboard.plan.range_end) == (
        panel.shown_start,
        panel.shown_end,
    )
    assert panel.render_seconds > 0  # measured; how fast is bench/dashboard_paint.py's to say


def test_a_chosen_day_shows_its_cells_digests_and_counts(dashboard) -> None:
    panel = dashboard.coverage
    day = panel.cells[0].day
    panel.selected_day = day
    assert panel.cells[0].expected_digest in panel.day_details.value
    assert panel.day_details.value.count("<tr>") == 1 + len(
        [c for c in panel.cells if c.day == day]
    )
    panel.selected_day = DEMO_TODAY + timedelta(days=400)
    assert "no cells" in panel.day_details.value


def test_a_range_preset_narrows_the_heatmap(dashboard) -> None:
    dashboard.coverage.preset.value = 30
    assert dashboard.coverage.shown_end == DEMO_TODAY
    assert dashboard.coverage.shown_start == DEMO_TODAY - timedelta(days=29)


def test_preview_run_progress_then_verify_cancel_and_resume(ctx, dashboard) -> None:
    plan = dashboard.plan
    plan.range_start, plan.range_end = WEEK
    before = control_rows(ctx)["IngestionPlan"]
    plan.preview()
    assert plan.message_kind == "ok" and plan.plan_id is None and plan.previewed is not None
    assert control_rows(ctx)["IngestionPlan"] == before  # a preview saves nothing
    assert "not saved" in plan.preview_area.value and "Steps" in plan.preview_area.value
    plan.force = True  # the form changed: the preview no longer holds
    assert plan.previewed is None and "preview again" in plan.preview_area.value
    plan.force = False
    plan.preview()

    plan.executor = "inline"  # the panel's flow is under test here, not an executor
    plan.run()
    job_id = plan.started_job_id
    assert job_id is not None, plan.message
    assert dashboard.tabs.selected_index == 2 and dashboard.jobs.job_id == job_id
    saved = service.show_job(ctx, job_id=job_id).job.plan_id
    assert control_rows(ctx)["IngestionPlan"] == before + 1 and saved is not None
    assert follow(dashboard, job_id) == "succeeded"
    detail = dashboard.jobs.detail
    assert detail.progress.value == detail.progress.max == detail.cells_total > 0
    assert "succeeded" in detail.steps.table.value and "job.transition" in detail.logs.rows.value
    assert dashboard.coverage.totals["current"] > 0  # the finished job refreshed coverage

    detail.verify()
    assert detail.message_kind == "ok" and "cells checked" in detail.verification.value
    detail.cancel()  # a finished job cannot be cancelled: the service says why, in the panel
    assert detail.message_kind == "error" and detail.message.startswith("cancel failed: ")
    assert "Traceback" not in detail.message_area.value
    assert detail.cancel_button.disabled and detail.resume_button.disabled


def test_service_errors_are_one_line_in_the_panel(dashboard) -> None:
    plan = dashboard.plan
    plan.range_start, plan.range_end = WEEK[1], WEEK[0]
    plan.preview()
    assert plan.message_kind == "error"
    assert plan.message == (f"preview failed: “To” {WEEK[0]} is before “From” {WEEK[1]}")
    assert "sc-error" in plan.message_area.value
    dashboard.jobs.detail.job_id = 999
    assert dashboard.jobs.detail.message == "show job failed: job 999 not found"


def test_a_reopened_dashboard_finds_the_live_job(ctx) -> None:
    queued = service.enqueue(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range, range_start_day=WEEK[0], range_end_day=WEEK[1]
        ),
    )
    assert queued.job is not None
    jobs = JobsPanel(ctx, poll_interval=0)
    jobs.refresh()
    assert jobs.job_id == queued.job.job.id and jobs.live
    assert jobs.detail.status == JobStatus.queued and not jobs.detail.cancel_button.disabled
    jobs.detail.cancel()  # a queued job is cancelled at once
    assert jobs.detail.status == JobStatus.cancelled and not jobs.detail.resume_button.disabled
    jobs.refresh()
    assert not jobs.live and jobs.finished == 1


def test_reconcile_finds_a_lost_shard_and_a_repair_job_restores_it(ctx, dashboard) -> None:
    service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range, range_start_day=WEEK[0], range_end_day=WEEK[1]
        ),
    )
    shard = next((ctx.settings.export_dir).rglob("*.jsonl"))
    shard.unlink()
    panel = dashboard.reconcile
    assert panel.repair_button.disabled and panel.run_button.disabled
    panel.reconcile()
    assert panel.reconciliation_id is not None and "missing artifact" in panel.findings.value
    panel.make_repair_plan()
    assert panel.repair_plan_id is not None, panel.message
    assert shard.stem in panel.repair_preview.value and not panel.run_button.disabled
    panel.executor = "inline"  # the faces' default is the notebook executor: slower here
    panel.run_repair()
    assert panel.started_job_id is not None and dashboard.jobs.job_id == panel.started_job_id
    assert service.show_job(ctx, job_id=panel.started_job_id).job.executor == "inline"
    assert follow(dashboard, panel.started_job_id) == "succeeded"
    assert shard.exists()


def test_the_poller_stops_when_nothing_is_live_and_can_start_again() -> None:
    ticks: list[int] = []
    poller = Poller(lambda: (ticks.append(1), len(ticks) < 3)[1], interval=0.01)
    poller.start()
    wait_for(lambda: not poller.running, timeout=5)
    assert len(ticks) == 3
    poller.start()
    wait_for(lambda: not poller.running, timeout=5)
    assert len(ticks) == 4
    Poller(lambda: True, interval=0).start()  # interval 0: never polls


def test_a_huge_reconciliation_id_is_one_line_in_the_panel(dashboard) -> None:
    plan = dashboard.plan
    plan.mode = "repair"
    plan.reconciliation_id = 10**20
    plan.preview()
    assert plan.message_kind == "error"
    assert plan.message == (
        "preview failed: “Reconciliation”: 100000000000000000000 is out of range; "
        "allowed: 1..2147483647"
    )
