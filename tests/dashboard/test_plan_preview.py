"""The plan panel's preview: it saves nothing; Save plan (or Run) saves exactly the previewed
cells and is refused when they changed since; an empty plan says what is true (the
planner's facts, modes by their labels); Skip unreadable records reaches the plan."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, func, select

from softcopy.dashboard.plan import PlanPanel
from softcopy.ingestion import service
from softcopy.ingestion.models import IngestionPlan
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY

WEEK = (DEMO_TODAY - timedelta(days=6), DEMO_TODAY)


def plans(ctx: service.Context) -> int:
    with Session(ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(IngestionPlan)) or 0


def test_preview_saves_nothing_and_save_keeps_exactly_the_previewed_cells(
    ctx: service.Context,
) -> None:
    panel = PlanPanel(ctx)
    panel.range_start, panel.range_end = WEEK
    panel.preview()
    assert plans(ctx) == 0 and panel.plan_id is None
    assert panel.previewed is not None and panel.previewed.plan.cells > 0
    panel.save()
    assert plans(ctx) == 1 and panel.plan_id is not None, panel.message
    saved = service.get_plan(ctx, plan_id=panel.plan_id)
    assert saved.plan.cells == panel.previewed.plan.cells
    assert f"plan {panel.plan_id} saved" in panel.message and "--" not in panel.message


def test_a_preview_whose_cells_changed_is_refused_when_saved(ctx: service.Context) -> None:
    panel = PlanPanel(ctx)
    panel.range_start, panel.range_end = WEEK
    panel.preview()
    # meanwhile a job makes some of those cells current: the preview no longer holds
    service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range, range_start_day=WEEK[1], range_end_day=WEEK[1]
        ),
    )
    before = plans(ctx)
    panel.save()
    assert panel.message_kind == "error" and "preview it again" in panel.message
    assert plans(ctx) == before  # nothing saved


def test_an_empty_plan_says_what_is_true_in_the_forms_words(ctx: service.Context) -> None:
    panel = PlanPanel(ctx)
    panel.range_start = DEMO_TODAY + timedelta(days=10)
    panel.range_end = DEMO_TODAY + timedelta(days=20)
    panel.preview()
    view = panel.previewed
    assert view is not None and view.plan.cells == 0 and view.facts
    assert panel.message.startswith("nothing to do: no source has data")
    assert "every chosen cell is current" not in panel.message
    assert "sc-plan-facts" in panel.preview_area.value
    assert "backfill_range" not in panel.preview_area.value  # the mode by its label
    assert "Backfill a range" in panel.preview_area.value


def test_skip_unreadable_records_reaches_the_plan(ctx: service.Context) -> None:
    panel = PlanPanel(ctx)
    assert panel.options().skip_bad_records is False
    panel.skip_box.value = True
    assert panel.options().skip_bad_records is True
    assert panel.skip_box.description == "Skip unreadable records"
