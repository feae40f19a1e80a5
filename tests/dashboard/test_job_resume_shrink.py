"""The job view's Resume where the job's rest would remove published items (issue 8):
off, saying what it would remove, with the "Allow removing published items" box beside
it; ticked, Resume goes through and the plan keeps the choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from softcopy.dashboard import Dashboard
from softcopy.dashboard.plan import ALLOW_SHRINK
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode
from softcopy.memory import index
from tests.conftest import DEMO_TODAY

WEEK = service.PlanOptions(
    PlanMode.backfill_range,
    sources=["chat"],
    range_start_day=DEMO_TODAY - timedelta(days=6),
    range_end_day=DEMO_TODAY,
)


def chat_rows(ctx: service.Context) -> int:
    return sum(rows for rows, _ in index.day_digests(ctx.settings.index_path, "chat").values())


def test_resume_that_would_shrink_is_off_until_the_box_is_ticked(ctx: service.Context) -> None:
    service.run(ctx, options=WEEK)
    published = chat_rows(ctx)
    assert published > 0
    waiting = service.enqueue(ctx, options=service.PlanOptions(**{**WEEK.__dict__, "force": True}))
    assert waiting.job is not None and waiting.job.job.id is not None
    job_id = waiting.job.job.id
    service.cancel(ctx, job_id=job_id)  # a queued job is cancelled at once
    ctx.settings.source("chat").path.write_text("")  # cut before it is resumed

    board = Dashboard(ctx, poll_interval=0)
    try:
        detail = board.jobs.detail
        board.jobs.show(job_id)
        assert detail.shrink_box.layout.display == "" and not detail.shrink_box.value
        assert detail.skip_box.layout.display == "none"
        assert detail.resume_button.disabled
        assert detail.resume_reason.startswith("the plan would remove ")
        assert "source 'chat'" in detail.resume_reason
        assert detail.resume_reason.endswith(f"tick “{ALLOW_SHRINK}” to do it anyway")
        assert "--allow-shrink" not in detail.resume_reason
        detail.shrink_box.value = True
        assert not detail.resume_button.disabled and detail.reason.value == ""
        detail.resume()
        assert detail.message_kind == "ok" and "removing published items" in detail.message
        plan_id = service.show_job(ctx, job_id=job_id).job.plan_id
        assert service.get_plan(ctx, plan_id=plan_id).plan.params["allow_shrink"] is True

        deadline = datetime.now(UTC) + timedelta(seconds=90)
        while True:
            board.jobs.refresh()
            if detail.status not in {"queued", "running", "cancelling"}:
                break
            assert datetime.now(UTC) < deadline, "the resumed job did not end"
        assert detail.status == JobStatus.succeeded
        assert chat_rows(ctx) == 0
        assert detail.shrink_box.layout.display == "none"  # nothing left to resume
    finally:
        board.close()
