"""Publish keeps the destructive-plan guard when the source changes after the plan was
checked (issue 8): a queued job a worker claims after its source was truncated or
re-pointed fails the day it would empty, naming the source, day and counts, and removes
nothing; a plan that allowed shrinking still does; catch_up_recent keeps its window."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from softcopy.errors import DestructivePlan
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode
from softcopy.memory import index
from softcopy.memory.stage import ShrinkGuard, ShrinkRefused
from tests.conftest import DEMO_TODAY

START = DEMO_TODAY - timedelta(days=29)
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range, sources=["chat"], range_start_day=START, range_end_day=DEMO_TODAY
)
LOOKBACK = 7
WINDOW = DEMO_TODAY - timedelta(days=LOOKBACK)


def rows_by_day(ctx: service.Context) -> dict[date, int]:
    return {
        day: rows
        for (_, day), (rows, _) in index.day_digests(ctx.settings.index_path, "chat").items()
    }


def queued(ctx: service.Context, options: service.PlanOptions) -> int:
    """A job waiting for a worker, as the API and --detach leave one."""
    outcome = service.enqueue(ctx, options=options)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.queued
    assert outcome.job.job.id is not None
    return outcome.job.job.id


def claimed(ctx: service.Context, job_id: int) -> service.JobView:
    assert service.work(ctx, once=True, job_id=job_id) == [job_id]
    return service.show_job(ctx, job_id=job_id)


@pytest.fixture
def published(ctx: service.Context) -> dict[date, int]:
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    found = rows_by_day(ctx)
    assert min(found) < WINDOW <= max(found) and sum(found.values()) > 0
    return found


def test_queued_job_claimed_after_truncation_removes_nothing(
    ctx: service.Context, published: dict[date, int]
) -> None:
    job_id = queued(ctx, service.PlanOptions(**{**BACKFILL.__dict__, "force": True}))
    ctx.settings.source("chat").path.write_text("")  # truncated while the job waits
    view = claimed(ctx, job_id)
    assert view.job.status is JobStatus.failed
    first = min(published)
    reason = view.job.error or ""
    assert f"publish chat {first}: would remove {published[first]} of {published[first]}" in reason
    assert f"({published[first]} → 0)" in reason
    assert rows_by_day(ctx) == published  # the index kept every published item
    with pytest.raises(DestructivePlan) as refused:  # and resume refuses the rest
        service.resume(ctx, job_id=job_id)
    assert refused.value.source == "chat" and refused.value.remaining == 0
    assert rows_by_day(ctx) == published
    check = service.check_resume(ctx, job_id=job_id)
    assert check.removes_published and check.blocker == str(refused.value)
    resumed = service.resume(ctx, job_id=job_id, allow_shrink=True)  # said so: done
    assert resumed.job.status is JobStatus.succeeded
    assert service.get_plan(ctx, plan_id=resumed.job.plan_id).plan.params["allow_shrink"]
    assert rows_by_day(ctx) == {}


def test_queued_job_that_allowed_shrinking_empties_the_days(
    ctx: service.Context, published: dict[date, int]
) -> None:
    options = service.PlanOptions(**{**BACKFILL.__dict__, "force": True, "allow_shrink": True})
    job_id = queued(ctx, options)
    ctx.settings.source("chat").path.write_text("")
    assert claimed(ctx, job_id).job.status is JobStatus.succeeded
    assert rows_by_day(ctx) == {}


def test_queued_catch_up_may_shrink_but_not_empty_a_day_of_its_window(
    ctx: service.Context, published: dict[date, int]
) -> None:
    kept, emptied = sorted(d for d in published if d >= WINDOW and published[d] > 1)[:2]
    path = ctx.settings.source("chat").path
    lines = path.read_text().splitlines(keepends=True)

    def without(*ids: str) -> str:
        return "".join(x for x in lines if json.loads(x)["id"] not in ids)

    first_of = {day: f"msg-{day:%Y%m%d}-0" for day in (kept, emptied)}
    path.write_text(without(*first_of.values()))  # late deletions in the window: allowed
    catch_up = service.PlanOptions(
        mode=PlanMode.catch_up_recent, sources=["chat"], lookback_days=LOOKBACK
    )
    job_id = queued(ctx, catch_up)
    emptied_ids = [json.loads(x)["id"] for x in lines if f"{emptied}T" in json.loads(x)["ts"]]
    path.write_text(without(first_of[kept], *emptied_ids))  # then the whole of one day
    view = claimed(ctx, job_id)
    assert view.job.status is JobStatus.failed
    n = published[emptied]
    assert f"publish chat {emptied}: would remove {n} of {n} published items" in (
        view.job.error or ""
    )
    assert rows_by_day(ctx) == {**published, kept: published[kept] - 1}


@pytest.mark.parametrize(
    ("window", "published", "remaining", "refused"),
    [
        (None, 3, 3, False),
        (None, 3, 4, False),
        (None, 3, 2, True),  # no window: no day may lose an item
        (date(2026, 3, 1), 3, 2, False),  # in the window: some may go
        (date(2026, 3, 1), 3, 0, True),  # never all
        (date(2026, 3, 11), 3, 2, True),  # before the window: none
        (date.min, 1, 0, True),
        (None, 0, 0, False),  # nothing was published
    ],
)
def test_shrink_guard_rule(
    window: date | None, published: int, remaining: int, refused: bool
) -> None:
    day = date(2026, 3, 10)
    if refused:
        with pytest.raises(
            ShrinkRefused,
            match=rf"publish chat 2026-03-10: would remove "
            rf"{published - remaining} of {published} published items",
        ):
            ShrinkGuard(window).check("chat", day, published, remaining)
    else:
        ShrinkGuard(window).check("chat", day, published, remaining)


def test_a_refusal_of_many_days_names_their_span() -> None:
    days = [date(2026, 3, d) for d in (2, 3, 5, 9, 10)]
    error = DestructivePlan([("chat", d, 2, 0) for d in days])
    assert "on 5 day(s) from 2026-03-02 to 2026-03-10: 2026-03-02 (2 → 0)" in str(error)
    assert ", … 2 more days;" in str(error)
    few = DestructivePlan([("chat", d, 2, 1) for d in days[:3]])
    assert "on 3 day(s): 2026-03-02 (2 → 1), 2026-03-03 (2 → 1), 2026-03-05 (2 → 1);" in str(few)
