"""Plans never destroy published data by surprise (issue 8): a plan that would empty a
published day, or drop items of days it was not asked to re-check, is refused unless the
caller allows shrinking; catch_up_recent keeps to its lookback window and to today."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from softcopy.config import add_source
from softcopy.errors import DestructivePlan, SourceExists
from softcopy.ingestion import service
from softcopy.ingestion.coverage import FutureDays
from softcopy.ingestion.states import FindingKind, JobStatus, PlanMode, Stage
from softcopy.memory import index
from tests.conftest import DEMO_TODAY
from tests.memory.sources.test_git import commit, run_git

START, END = DEMO_TODAY - timedelta(days=29), DEMO_TODAY
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END
)
LOOKBACK = 7
WINDOW = DEMO_TODAY - timedelta(days=LOOKBACK)
CATCH_UP = service.PlanOptions(mode=PlanMode.catch_up_recent, lookback_days=LOOKBACK)
FAR_FUTURE = date(9999, 12, 31)


def with_(options: service.PlanOptions, **changes: object) -> service.PlanOptions:
    return service.PlanOptions(**{**options.__dict__, **changes})


def rows_by_day(ctx: service.Context, source: str) -> dict[date, int]:
    return {
        day: rows
        for (_, day), (rows, _) in index.day_digests(ctx.settings.index_path, source).items()
    }


def chat_path(ctx: service.Context) -> Path:
    return ctx.settings.source("chat").path


def reopen(ctx: service.Context) -> service.Context:
    """The context again after softcopy.toml changed, on the same clock."""
    again = service.open_context(ctx.settings.home)
    again.clock = ctx.clock
    return again


def record(day: date, n: int = 0, text: str = "a message") -> str:
    return json.dumps({"id": f"new-{day}-{n}", "ts": f"{day}T12:00:00Z", "text": text}) + "\n"


def backfilled(ctx: service.Context) -> dict[date, int]:
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    published = rows_by_day(ctx, "chat")
    assert sum(published.values()) > 0 and min(published) < WINDOW <= max(published)
    return published


def test_truncated_source_catch_up_is_refused_naming_source_days_and_counts(
    ctx: service.Context,
) -> None:
    published = backfilled(ctx)
    plans_before = len(service.list_plans(ctx))
    chat_path(ctx).write_text("")
    with pytest.raises(DestructivePlan) as refused:
        service.plan(ctx, options=CATCH_UP)
    error = refused.value
    in_window = {d: n for d, n in published.items() if d >= WINDOW}
    assert error.source == "chat" and error.sources == ["chat"]
    assert error.days == sorted(in_window)  # only the lookback window, not the whole history
    assert (error.published, error.remaining, error.removed) == (
        sum(in_window.values()),
        0,
        sum(in_window.values()),
    )
    first = min(in_window)
    assert "source 'chat'" in str(error) and f"{first} ({in_window[first]} → 0)" in str(error)
    assert f"on {len(in_window)} day(s)" in str(error) and "--" not in str(error)  # no CLI flags
    with pytest.raises(DestructivePlan):
        service.run(ctx, options=CATCH_UP)
    assert len(service.list_plans(ctx)) == plans_before  # nothing persisted
    assert rows_by_day(ctx, "chat") == published  # nothing removed


def test_truncated_source_catch_up_keeps_to_its_lookback_window(ctx: service.Context) -> None:
    published = backfilled(ctx)
    chat_path(ctx).write_text("")
    view = service.plan(ctx, options=with_(CATCH_UP, allow_shrink=True))
    chat_days = {i.day for i in view.items if i.source == "chat"}
    assert chat_days == {d for d in published if d >= WINDOW}
    assert view.plan.params["allow_shrink"] is True
    outcome = service.run(ctx, plan_id=view.plan.id)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert rows_by_day(ctx, "chat") == {d: n for d, n in published.items() if d < WINDOW}


def test_repointed_source_is_refused_and_shrinks_only_when_allowed(ctx: service.Context) -> None:
    published = backfilled(ctx)
    other = ctx.settings.home / "sources" / "other.jsonl"
    quiet = next(d for d in (START + timedelta(days=i) for i in range(30)) if d not in published)
    other.write_text(record(quiet) + record(quiet, 1))
    home = ctx.settings.home
    with pytest.raises(SourceExists, match=r"source 'chat' already reads .*chat\.jsonl"):
        add_source(home, name="chat", kind="jsonl", path="sources/other.jsonl")
    assert reopen(ctx).settings.source("chat").path == chat_path(ctx)  # nothing written
    add_source(home, name="chat", kind="jsonl", path="sources/other.jsonl", replace=True)
    ctx = reopen(ctx)
    for options in (CATCH_UP, BACKFILL, with_(BACKFILL, force=True)):
        with pytest.raises(DestructivePlan) as refused:
            service.plan(ctx, options=options)
        assert refused.value.source == "chat" and refused.value.remaining == 0
    assert refused.value.days == sorted(published)  # a backfill empties every published day
    assert refused.value.published == sum(published.values())
    assert rows_by_day(ctx, "chat") == published

    allowed = service.plan(ctx, options=with_(BACKFILL, allow_shrink=True))
    chat_path(ctx).write_text(other.read_text() + record(quiet, 2))  # the plan goes stale
    outcome = service.run(ctx, plan_id=allowed.plan.id, replan=True)  # re-planned, still allowed
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert outcome.plan.params["allow_shrink"] is True
    assert rows_by_day(ctx, "chat") == {quiet: 3}  # only the new path's items in range


def test_partial_shrink_is_allowed_inside_the_lookback_only(ctx: service.Context) -> None:
    published = backfilled(ctx)
    old = next(d for d in sorted(published) if d < WINDOW and published[d] > 1)
    recent = next(d for d in sorted(published) if d >= WINDOW and published[d] > 1)
    lines = chat_path(ctx).read_text().splitlines(keepends=True)
    drop = {f"msg-{day:%Y%m%d}-0" for day in (old, recent)}
    chat_path(ctx).write_text("".join(x for x in lines if json.loads(x)["id"] not in drop))
    view = service.plan(ctx, options=CATCH_UP)  # the late deletion in the window is allowed
    assert {i.day for i in view.items if i.source == "chat"} == {recent}
    with pytest.raises(DestructivePlan) as refused:  # a backfill has no lookback window
        service.plan(ctx, options=BACKFILL)
    assert refused.value.days == [old, recent]
    assert refused.value.published == published[old] + published[recent]
    assert refused.value.removed == 2
    assert f"{old} ({published[old]} → {published[old] - 1})" in str(refused.value)
    allowed = service.run(ctx, options=with_(BACKFILL, allow_shrink=True))
    assert allowed.job is not None and allowed.job.job.status is JobStatus.succeeded
    shrunk = rows_by_day(ctx, "chat")
    assert shrunk == {**published, old: published[old] - 1, recent: published[recent] - 1}


def test_a_catch_up_resumed_days_later_keeps_the_window_it_was_made_with(
    ctx: service.Context,
) -> None:
    """A catch-up's lookback counts from the day its plan was made, for the resume check and
    for publish's own guard alike: resumed three days later, a day inside its window may
    still lose an item (the check used to count from the day of the resume, and refused
    what publish would have let through)."""
    published = backfilled(ctx)
    day = next(d for d in sorted(published) if d >= WINDOW and published[d] > 1)
    assert day < WINDOW + timedelta(days=3)  # outside a window counted from the resume
    records = [json.loads(x) for x in chat_path(ctx).read_text().splitlines()]
    edited, cut = f"msg-{day:%Y%m%d}-1", f"msg-{day:%Y%m%d}-0"
    for r in records:  # an edit in the window: the catch-up has that day to do
        r["text"] = r["text"] + " (edited)" if r["id"] == edited else r["text"]
    chat_path(ctx).write_text("".join(json.dumps(r) + "\n" for r in records))
    made = ctx.clock()
    queued = service.enqueue(ctx, options=with_(CATCH_UP, sources=["chat"]))
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    service.cancel(ctx, job_id=job_id)
    ctx.clock = lambda: made + timedelta(days=3)
    kept = [r for r in records if r["id"] != cut]  # then an item of that day is deleted
    chat_path(ctx).write_text("".join(json.dumps(r) + "\n" for r in kept))
    check = service.check_resume(ctx, job_id=job_id)
    assert check.blocker is None and not check.removes_published, check
    resumed = service.resume(ctx, job_id=job_id)
    assert resumed.job.status is JobStatus.succeeded, resumed.job.error
    assert rows_by_day(ctx, "chat")[day] == published[day] - 1


def test_publish_only_plan_counts_what_embed_recorded(ctx: service.Context) -> None:
    published = backfilled(ctx)
    chat_path(ctx).write_text("")
    export_embed = with_(BACKFILL, stages=[Stage.export, Stage.embed])
    service.run(ctx, options=export_embed)  # publishes nothing: not destructive
    assert rows_by_day(ctx, "chat") == published
    with pytest.raises(DestructivePlan) as refused:
        service.plan(ctx, options=with_(BACKFILL, stages=[Stage.publish]))
    assert refused.value.days == sorted(published)


def test_reconcile_repair_of_a_truncated_source_keeps_the_findings(ctx: service.Context) -> None:
    published = backfilled(ctx)
    chat_path(ctx).write_text("")
    report = service.reconcile(ctx, repair=True)
    assert report.repair_plan is None and report.run.repair_plan_id is None
    assert report.repair_refused is not None and "source 'chat'" in report.repair_refused
    drifted = {f.day for f in report.findings if f.kind is FindingKind.source_drift}
    assert drifted == set(published)
    again = service.get_reconciliation(ctx, reconciliation_id=report.run.id)  # type: ignore[arg-type]
    assert len(again.findings) == len(report.findings)  # persisted
    repair = with_(
        service.PlanOptions(mode=PlanMode.repair),
        reconciliation_id=report.run.id,
        allow_shrink=True,
    )
    view = service.plan(ctx, options=repair)
    assert {i.day for i in view.items if i.source == "chat"} == set(published)


def test_future_dated_record_does_not_hide_new_days(ctx: service.Context) -> None:
    early_end = DEMO_TODAY - timedelta(days=20)
    with chat_path(ctx).open("a") as handle:
        handle.write(record(FAR_FUTURE, text="from a clock gone wrong"))
    service.run(ctx, options=with_(BACKFILL, range_end_day=early_end))
    future = with_(BACKFILL, range_start_day=FAR_FUTURE, range_end_day=FAR_FUTURE)
    service.run(ctx, options=future)
    assert rows_by_day(ctx, "chat")[FAR_FUTURE] == 1  # the far-future record is published
    view = service.plan(ctx, options=with_(CATCH_UP, lookback_days=2))
    chat_days = {i.day for i in view.items if i.source == "chat"}
    scanned = {c.day for c in service.coverage(ctx, sources=["chat"]).cells}
    new_days = {d for d in scanned if early_end < d <= DEMO_TODAY}
    assert new_days and chat_days == new_days  # older than the lookback, still caught up
    assert FAR_FUTURE not in chat_days

    report = service.coverage(ctx)
    assert report.future_days == [FutureDays("chat", [FAR_FUTURE], 1, DEMO_TODAY)]
    assert (
        "source 'chat' has 1 items dated after today (2026-03-31)"
        in report.future_days[0].describe()
    )
    latest = service.latest_coverage(ctx)
    assert latest is not None and latest.future_days == report.future_days

    found = service.reconcile(ctx).findings
    future_findings = [f for f in found if f.kind is FindingKind.future_dated]
    assert [(f.source, f.day) for f in future_findings] == [("chat", FAR_FUTURE)]
    assert "after today (2026-03-31)" in future_findings[0].detail
    in_the_past = service.reconcile(ctx, range_end_day=DEMO_TODAY).findings
    assert all(f.kind is not FindingKind.future_dated for f in in_the_past)


def test_today_is_in_the_configured_timezone(ctx: service.Context, monkeypatch) -> None:
    """At 23:30 UTC on the demo's today it is already tomorrow in Auckland: a record of
    tomorrow evening there is not future-dated, and catch_up reaches it."""
    monkeypatch.setenv("SOFTCOPY_TIMEZONE", "Pacific/Auckland")
    ctx = reopen(ctx)
    late = ctx.clock().replace(hour=23, minute=30)
    ctx.clock = lambda: late
    tomorrow = DEMO_TODAY + timedelta(days=1)
    assert ctx.today() == tomorrow
    line = {"id": "nz", "ts": f"{tomorrow}T20:00:00+13:00", "text": "kia ora"}
    with chat_path(ctx).open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    assert service.coverage(ctx, sources=["chat"]).future_days == []
    view = service.plan(ctx, options=with_(CATCH_UP, sources=["chat"]))
    assert tomorrow in {i.day for i in view.items}


def test_commit_dated_2099_does_not_hide_new_days(ctx: service.Context) -> None:
    repo = ctx.settings.home / "repo"
    repo.mkdir()
    run_git(repo, "init", "-q")
    (repo / "log.txt").write_bytes(b"")
    old, new, future = (
        DEMO_TODAY - timedelta(days=20),
        DEMO_TODAY - timedelta(days=10),
        date(2099, 6, 1),
    )
    for day in (old, future):
        commit(repo, f"work of {day}".encode(), f"{day}T12:00:00+00:00")
    add_source(ctx.settings.home, name="code", kind="git", path="repo")
    ctx = reopen(ctx)
    code = with_(BACKFILL, sources=["code"])
    service.run(ctx, options=code)
    service.run(ctx, options=with_(code, range_start_day=future, range_end_day=future))
    commit(repo, b"late work", f"{new}T12:00:00+00:00")  # a new day, older than the lookback
    view = service.plan(ctx, options=with_(CATCH_UP, sources=["code"], lookback_days=2))
    assert {i.day for i in view.items} == {new}
    report = service.coverage(ctx, sources=["code"])
    assert report.future_days == [FutureDays("code", [future], 1, DEMO_TODAY)]


def test_resume_does_not_shrink_what_its_plan_did_not_allow(ctx: service.Context) -> None:
    published = backfilled(ctx)
    forced = with_(BACKFILL, sources=["chat"], force=True)  # redoes every chat day
    job_ids = []
    for allow in (False, True):  # not destructive yet: the source is unchanged
        queued = service.enqueue(ctx, options=with_(forced, allow_shrink=allow))
        assert queued.job is not None and queued.job.job.id is not None
        job_ids.append(queued.job.job.id)
        service.cancel(ctx, job_id=job_ids[-1])  # a queued job is cancelled at once
    refused_id, allowed_id = job_ids
    chat_path(ctx).write_text("")  # truncated while the jobs wait to be resumed
    with pytest.raises(DestructivePlan) as refused:
        service.resume(ctx, job_id=refused_id)
    assert refused.value.source == "chat" and refused.value.days == sorted(published)
    assert service.show_job(ctx, job_id=refused_id).job.status is JobStatus.cancelled
    assert rows_by_day(ctx, "chat") == published
    resumed = service.resume(ctx, job_id=allowed_id)
    assert resumed.job.status is JobStatus.succeeded
    assert rows_by_day(ctx, "chat") == {}
