"""Plans say what is true when they leave cells (issue 11 item 10): a range without data,
stale cells outside catch_up_recent's lookback; a preview is not saved; coverage calls a
done cell whose artifact is gone stale (issue 11 item 2)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from softcopy.cli.main import main
from softcopy.ingestion import service
from softcopy.ingestion.models import CoverageSnapshot, IngestionPlan, IngestionPlanItem
from softcopy.ingestion.planner import PreviewChanged
from softcopy.ingestion.states import CellState, PlanMode, Stage
from tests.conftest import DEMO_TODAY

START, END = DEMO_TODAY - timedelta(days=29), DEMO_TODAY
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END
)


def written(ctx: service.Context) -> tuple[int, int, int]:
    with Session(ctx.engine) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (IngestionPlan, IngestionPlanItem, CoverageSnapshot)
        )


def backfilled(ctx: service.Context) -> None:
    outcome = service.run(ctx, options=BACKFILL, executor="inline")
    assert outcome.job is not None and outcome.job.job.cells_done == outcome.plan.cells


def test_a_range_after_the_data_says_where_the_data_ends(
    ctx: service.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    last = max(c.day for c in service.coverage(ctx).cells)
    later = service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=last + timedelta(days=10),
        range_end_day=last + timedelta(days=40),
    )
    view = service.preview_plan(ctx, options=later)
    assert view.plan.cells == 0 and view.facts == [f"no source has data after {last}"]
    earlier = service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=START - timedelta(days=40),
        range_end_day=START - timedelta(days=35),
    )
    first = min(c.day for c in service.coverage(ctx).cells)
    assert service.preview_plan(ctx, options=earlier).facts == [
        f"no source has data before {first}"
    ]
    code = main(
        [
            "ingestion",
            "plan",
            "--mode",
            "backfill_range",
            "--range-start-day",
            str(later.range_start_day),
            "--range-end-day",
            str(later.range_end_day),
            "--home",
            str(ctx.settings.home),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and f"note: no source has data after {last}" in out
    assert "every cell" not in out


def test_a_preview_writes_nothing_and_saving_it_checks_its_cells(ctx: service.Context) -> None:
    before = written(ctx)
    preview = service.preview_plan(ctx, options=BACKFILL)
    assert preview.plan.id is None and preview.plan.cells == len(preview.items) > 0
    assert written(ctx) == before  # no plan, no items, no snapshot
    saved = service.plan(ctx, options=BACKFILL, expect_fingerprint=preview.plan.fingerprint)
    assert saved.plan.id is not None
    assert [(i.source, i.day, i.stage, i.state) for i in saved.items] == [
        (i.source, i.day, i.stage, i.state) for i in preview.items
    ]
    assert saved.items == service.get_plan(ctx, plan_id=saved.plan.id).items  # ids too
    # the cells change (a note gains a line): the preview no longer describes the plan
    note = sorted((ctx.settings.home / "sources" / "notes" / "Daily").rglob("*.md"))[-1]
    note.write_text(note.read_text() + "\none more line\n")
    with pytest.raises(PreviewChanged, match="preview it again"):
        service.plan(ctx, options=BACKFILL, expect_fingerprint=preview.plan.fingerprint)


def test_a_gone_artifact_is_stale_and_catch_up_names_what_it_leaves(
    ctx: service.Context,
) -> None:
    """One backfill (the slow part) for two checks: coverage calls a done export whose file
    is gone stale; catch_up_recent names the stale cells it leaves outside its lookback."""
    backfilled(ctx)
    cells = service.coverage(ctx).cells
    assert {c.state for c in cells} <= {CellState.current, CellState.empty}
    done = next(c for c in cells if c.stage is Stage.export and c.state is CellState.current)
    path = Path(ctx.settings.export_dir) / done.source / f"{done.day:%Y}" / f"{done.day}.jsonl"
    path.unlink()
    report = service.coverage(ctx)
    day = {c.stage: c for c in report.cells if (c.source, c.day) == (done.source, done.day)}
    assert day[Stage.export].state is CellState.stale and day[Stage.export].artifact_missing
    assert day[Stage.embed].state is CellState.stale  # its upstream is not current
    assert not day[Stage.embed].artifact_missing
    others = [c for c in report.cells if (c.source, c.day) != (done.source, done.day)]
    assert {c.state for c in others} <= {CellState.current, CellState.empty}
    latest = service.latest_coverage(ctx)
    assert latest is not None and latest.cells == report.cells  # persisted with the flag
    redo = service.run(ctx, options=BACKFILL, executor="inline")  # writes the file again
    assert redo.plan.id is not None
    again = service.get_plan(ctx, plan_id=redo.plan.id).items
    assert {(i.source, i.day) for i in again} == {(done.source, done.day)}
    assert path.exists()

    note = sorted((ctx.settings.home / "sources" / "notes" / "Daily").rglob("*.md"))[0]
    assert DEMO_TODAY - timedelta(days=7) > START  # the oldest note is outside the lookback
    note.write_text(note.read_text() + "\nedited long after\n")
    catch_up = service.PlanOptions(mode=PlanMode.catch_up_recent, lookback_days=7)
    view = service.preview_plan(ctx, options=catch_up)
    assert view.plan.cells == 0
    assert view.facts == [
        f"3 stale cells outside the 7-day lookback, oldest {note.stem} — use backfill_range"
    ]
    outcome = service.run(ctx, options=catch_up, executor="inline")
    assert outcome.job is None and outcome.facts == view.facts
