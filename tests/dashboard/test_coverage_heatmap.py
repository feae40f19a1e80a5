"""The interactive coverage heatmap at widget level: what it draws (days, weeks or months;
a row per source by its worst stage), what a click and a selection do (a day opened; the
plan panel previews the selection), problems only and next problem, a running job drawn
from its rows, the last reconcile outlined, and form errors worded by the form's labels."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from softcopy.dashboard import Dashboard
from softcopy.dashboard.base import MODE_LABELS
from softcopy.ingestion import service
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.states import CellState, PlanMode, Stage, StepStatus
from softcopy.views.calendar import buckets, choose_unit, heatmap_data
from tests.conftest import DEMO_TODAY

START = DEMO_TODAY - timedelta(days=29)


@pytest.fixture
def board(ctx: service.Context):
    made = Dashboard(ctx, poll_interval=0)
    made.coverage.refresh()
    yield made
    made.close()


def cell(day: date, state: CellState, stage: Stage = Stage.export, source: str = "notes") -> Cell:
    return Cell(source, day, stage, state, "d", "d", 1)


def test_ten_years_aggregate_to_months_with_counts_and_a_row_per_source() -> None:
    start, end = date(2016, 12, 1), date(2026, 11, 30)
    assert choose_unit(start, end) == "month"
    assert choose_unit(start, start + timedelta(days=399)) == "day"
    assert choose_unit(start, start + timedelta(days=800)) == "week"
    weeks = buckets(date(2026, 3, 4), date(2026, 3, 20), "week")
    assert weeks[0] == (date(2026, 3, 4), date(2026, 3, 8))  # clipped to a Sunday
    assert all(b[0].weekday() == 0 for b in weeks[1:])
    cells = [cell(start + timedelta(days=i), CellState.current) for i in range(3652)]
    cells.append(cell(date(2020, 5, 17), CellState.failed, Stage.embed))
    data = heatmap_data(cells, start=start, end=end, sources=["notes"])
    assert data["unit"] == "month" and len(data["columns"]) == 120
    source_row = data["rows"][0]
    assert source_row["stage"] is None and len(source_row["codes"]) == 120
    may_2020 = next(i for i, (a, _) in enumerate(data["columns"]) if a == "2020-05-01")
    assert source_row["codes"][may_2020] == "f"  # the worst stage colours the source row
    assert source_row["counts"][may_2020] == "f1,c31"
    export = next(r for r in data["rows"] if r["stage"] == "export")
    assert export["codes"][may_2020] == "c" and export["counts"][may_2020] == "c31"


def test_a_live_job_turns_cells_current_as_they_land_and_tells_running_from_held() -> None:
    days = [START + timedelta(days=i) for i in range(3)]
    cells = [cell(d, CellState.running) for d in days]
    live = {
        ("notes", days[0], Stage.export): service.LiveCell(1, StepStatus.running, True),
        ("notes", days[1], Stage.export): service.LiveCell(1, StepStatus.running, False),
        ("notes", days[2], Stage.export): service.LiveCell(1, StepStatus.pending, False),
        ("notes", days[2], Stage.embed): service.LiveCell(1, StepStatus.pending, False),
    }
    data = heatmap_data(cells, start=days[0], end=days[2], sources=["notes"], live=live)
    export = next(r for r in data["rows"] if r["stage"] == "export")
    embed = next(r for r in data["rows"] if r["stage"] == "embed")
    assert export["codes"] == "crh"
    assert embed["codes"] == "  h"  # held, though the snapshot had no row for it yet
    assert data["states"]["r"][0] == "running now"
    assert data["states"]["h"][0] == "held by a queued or running job"


def test_click_opens_the_worst_day_and_a_selection_previews_a_backfill(board: Dashboard) -> None:
    cov = board.coverage
    data = cov.heatmap.data
    assert data["unit"] == "day" and len(data["columns"]) == 30
    notes = next(
        r for r, row in enumerate(data["rows"]) if row["source"] == "notes" and not row["stage"]
    )
    cov.heatmap.handle({"event": "click", "row": notes, "col": 3})
    assert cov.selected_day == START + timedelta(days=3)
    assert "expected" in cov.day_details.value and "artifact" in cov.day_details.value
    assert cov.heatmap.focus == [notes, 3]

    assert cov.backfill_button.disabled  # nothing selected yet: the button says so
    cov.heatmap.handle({"event": "select", "rows": [notes, notes], "cols": [27, 25]})
    assert cov.selection is not None
    assert (cov.selection.start, cov.selection.end) == (
        START + timedelta(25),
        START + timedelta(27),
    )
    assert cov.heatmap.selection["sources"] == ["notes"]
    assert not cov.backfill_button.disabled
    cov.backfill_selection()
    assert board.tabs.selected_index == 1  # the plan panel
    plan = board.plan
    assert plan.mode == PlanMode.backfill_range and plan.sources == ["notes"]
    assert (plan.range_start, plan.range_end) == (START + timedelta(25), START + timedelta(27))
    assert "cells" in plan.preview_area.value  # previewed: the user sees it before Run
    assert plan.mode_picker.label == MODE_LABELS["backfill_range"]


def test_problems_only_and_next_problem_walk_the_problems_in_time_order(
    board: Dashboard,
) -> None:
    cov = board.coverage
    found = cov.heatmap.problems()
    assert found  # the demo home starts with nothing ingested: every cell is missing
    cov.problems_only.value = True
    assert cov.heatmap.problems_only
    cov.next_problem()
    first = list(cov.heatmap.focus)
    cov.next_problem()
    second = list(cov.heatmap.focus)
    assert first != second and (first[1], first[0]) < (second[1], second[0])
    assert cov.selected_day is not None


def test_running_backfill_is_drawn_live_then_current(board: Dashboard) -> None:
    cov, ctx = board.coverage, board.ctx
    days = (DEMO_TODAY - timedelta(days=2), DEMO_TODAY)
    options = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=days[0], range_end_day=days[1]
    )
    outcome = service.enqueue(ctx, options=options)  # queued: no worker yet
    assert outcome.job is not None
    assert cov.poll_live() is True  # a live job: keep polling
    codes = {c for row in cov.heatmap.data["rows"] for c in row["codes"][-3:]}
    assert codes - {" ", "e"} == {"h"}  # held by the queued job, not running
    assert "held by live jobs" in cov.header.value
    service.work(ctx, once=True)  # a worker runs it to the end
    snapshot = cov.snapshot_id
    assert cov.poll_live() is False  # the job ended: a new snapshot holds its cells
    assert cov.snapshot_id != snapshot and "held by live jobs" not in cov.header.value
    last3 = {c for row in cov.heatmap.data["rows"] for c in row["codes"][-3:]}
    assert last3 - {" ", "e"} == {"c"}


def test_a_job_that_ends_while_another_is_live_is_drawn_current(board: Dashboard) -> None:
    """Its cells leave the live rows: a new snapshot holds them (not the old one's state)."""
    cov, ctx = board.coverage, board.ctx
    spans = {
        "late": (DEMO_TODAY - timedelta(days=1), DEMO_TODAY),
        "early": (DEMO_TODAY - timedelta(days=9), DEMO_TODAY - timedelta(days=8)),
    }
    made = {
        name: service.enqueue(
            ctx,
            options=service.PlanOptions(
                mode=PlanMode.backfill_range, range_start_day=first, range_end_day=last
            ),
        ).job
        for name, (first, last) in spans.items()
    }
    assert cov.poll_live() is True
    service.work(ctx, once=True)  # a worker runs one of them; the other stays queued
    ended = {
        name
        for name, job in made.items()
        if job is not None and service.show_job(ctx, job_id=job.job.id).job.status == "succeeded"
    }
    assert len(ended) == 1
    snapshot = cov.snapshot_id
    assert cov.poll_live() is True  # the other job is still live
    assert cov.snapshot_id != snapshot  # the ended job's cells are read again

    def drawn(name: str) -> set[str]:
        first, last = (d.isoformat() for d in spans[name])
        data = cov.heatmap.data
        cols = [i for i, (a, _) in enumerate(data["columns"]) if first <= a <= last]
        return {row["codes"][i] for row in data["rows"] for i in cols} - {" ", "e"}

    (done,) = ended
    (waiting,) = set(spans) - ended
    assert drawn(done) == {"c"} and drawn(waiting) == {"h"}


def test_a_lost_shard_is_outlined_after_reconcile_and_repair_selection_plans_it(
    board: Dashboard,
) -> None:
    cov, ctx = board.coverage, board.ctx
    assert "never reconciled" in cov.header.value
    week = (DEMO_TODAY - timedelta(days=6), DEMO_TODAY)
    options = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=week[0], range_end_day=week[1]
    )
    service.run(ctx, options=options)
    shard = next(ctx.settings.export_dir.rglob("*.jsonl"))
    shard.unlink()
    cov.refresh()
    found = service.reconcile(ctx, range_start_day=week[0], range_end_day=week[1])
    lost = [f for f in found.findings if f.kind == "missing_artifact"]
    assert lost and lost[0].day is not None
    board.reconcile.reconciliation_id = found.run.id  # what the Reconcile tab sets
    assert cov.reconciliation_id == found.run.id
    assert f"last reconcile #{found.run.id} at " in cov.header.value
    data = cov.heatmap.data
    col = next(c for c, (a, b) in enumerate(data["columns"]) if a == lost[0].day.isoformat())
    rows = {r for r, c in data["marks"] if c == col}
    assert {data["rows"][r]["source"] for r in rows} == {lost[0].source}  # outlined

    source_row = next(
        r
        for r, row in enumerate(data["rows"])
        if row["source"] == lost[0].source and not row["stage"]
    )
    cov.heatmap.handle({"event": "select", "rows": [source_row] * 2, "cols": [col, col]})
    cov.repair_selection()
    plan = board.plan
    assert board.tabs.selected_index == 1 and plan.mode == PlanMode.repair
    assert plan.reconciliation_id is not None and plan.reconciliation_id != found.run.id
    assert plan.previewed is not None and plan.previewed.plan.cells > 0, plan.message
    assert "Repair reconcile findings" in plan.preview_area.value


def test_form_errors_name_the_form_fields_not_cli_flags(board: Dashboard) -> None:
    plan = board.plan
    plan.range_start, plan.range_end = DEMO_TODAY, DEMO_TODAY - timedelta(days=3)
    plan.preview()
    assert plan.message_kind == "error"
    assert "“From”" in plan.message and "“To”" in plan.message, plan.message
    assert "range_end_day" not in plan.message and "--" not in plan.message
