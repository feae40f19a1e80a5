"""The plan panel's "Allow removing published items" box: a destructive plan is refused
with the checkbox named, and goes through once it is ticked."""

from __future__ import annotations

from datetime import timedelta

from softcopy.dashboard import Dashboard
from softcopy.dashboard.plan import ALLOW_SHRINK, PlanPanel
from softcopy.ingestion import service
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY

WEEK = service.PlanOptions(
    mode=PlanMode.backfill_range,
    sources=["chat"],
    range_start_day=DEMO_TODAY - timedelta(days=6),
    range_end_day=DEMO_TODAY,
)


def test_destructive_preview_names_the_checkbox_and_passes_once_ticked(
    ctx: service.Context,
) -> None:
    service.run(ctx, options=WEEK)
    ctx.settings.source("chat").path.write_text("")
    panel = PlanPanel(ctx)
    panel.mode = PlanMode.backfill_range.value
    panel.range_start, panel.range_end = WEEK.range_start_day, WEEK.range_end_day
    panel.sources = ["chat"]
    assert panel.shrink_box.description == ALLOW_SHRINK and not panel.shrink_box.value
    assert panel.shrink_box.layout.display is None  # shown in every mode
    panel.preview()
    assert panel.message_kind == "error" and panel.plan_id is None
    assert panel.message.startswith("preview refused: the plan would remove ")
    assert "source 'chat'" in panel.message
    assert panel.message.endswith(f"tick “{ALLOW_SHRINK}” to do it anyway")
    assert "--allow-shrink" not in panel.message
    panel.shrink_box.value = True  # the box drives the trait, and the plan's options
    assert panel.options().allow_shrink is True
    panel.preview()
    assert panel.message_kind == "ok" and panel.previewed is not None
    panel.save()  # Save plan keeps exactly the previewed cells
    assert panel.message_kind == "ok" and panel.plan_id is not None, panel.message
    assert service.get_plan(ctx, plan_id=panel.plan_id).plan.params["allow_shrink"] is True


def test_run_of_a_destructive_form_is_refused_and_starts_no_job(ctx: service.Context) -> None:
    week = service.PlanOptions(mode=PlanMode.catch_up_recent, sources=["chat"], lookback_days=6)
    service.run(ctx, options=week)
    jobs_before = len(service.list_jobs(ctx))
    ctx.settings.source("chat").path.write_text("")
    panel = PlanPanel(ctx)
    panel.mode = PlanMode.catch_up_recent.value
    panel.lookback_days = 6
    panel.sources = ["chat"]
    panel.run()  # Run without a preview: plans and runs the form as it is
    assert panel.message_kind == "error" and panel.started_job_id is None
    assert panel.message.startswith("run refused: the plan would remove ")
    assert "source 'chat'" in panel.message and " → 0)" in panel.message
    assert panel.message.endswith(f"tick “{ALLOW_SHRINK}” to do it anyway")
    assert len(service.list_jobs(ctx)) == jobs_before


def test_a_destructive_repair_plan_says_where_it_can_be_allowed(ctx: service.Context) -> None:
    service.run(ctx, options=WEEK)
    ctx.settings.source("chat").path.write_text("")
    board = Dashboard(ctx, poll_interval=0)
    try:
        tab = board.reconcile
        tab.reconcile()
        assert tab.reconciliation_id is not None
        tab.make_repair_plan()
        assert tab.message_kind == "error" and tab.repair_plan_id is None
        assert tab.message.startswith("make repair plan refused: the plan would remove ")
        assert "source 'chat'" in tab.message and "--allow-shrink" not in tab.message
        assert f"reconciliation {tab.reconciliation_id} and “{ALLOW_SHRINK}” ticked" in tab.message
        panel = board.plan  # as the message says: it goes through there
        panel.mode = PlanMode.repair.value
        panel.reconciliation_id = tab.reconciliation_id
        panel.shrink_box.value = True
        panel.preview()
        assert panel.message_kind == "ok", panel.message
        assert panel.previewed is not None and panel.previewed.plan.cells > 0
    finally:
        board.close()
