"""A source's scan is redone when what its days depend on changes, not only its files
(issue 8: "today in the configured timezone"): after the timezone is set, a record's day
is its day there, so catch_up_recent and coverage see it where it belongs; the same for a
git source, whose scan is otherwise skipped while its refs do not move."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from softcopy.config import add_source
from softcopy.ingestion import service
from softcopy.ingestion.coverage import FutureDays
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY
from tests.memory.sources.test_git import commit, run_git

EVENING = f"{DEMO_TODAY}T20:00:00+00:00"  # in Auckland (UTC+13): tomorrow morning
TOMORROW = DEMO_TODAY + timedelta(days=1)


def reopened(ctx: service.Context) -> service.Context:
    again = service.open_context(ctx.settings.home)
    late = ctx.clock().replace(hour=23, minute=30)  # tomorrow in Auckland too
    again.clock = lambda: late
    return again


def days_of(ctx: service.Context, source: str) -> set:
    return {c.day for c in service.coverage(ctx, sources=[source]).cells if c.items}


def test_setting_the_timezone_redates_a_scanned_jsonl_source(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = {"id": "late", "ts": EVENING, "text": "an evening message"}
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    assert TOMORROW not in days_of(ctx, "chat")  # scanned in UTC: it is today's
    monkeypatch.setenv("SOFTCOPY_TIMEZONE", "Pacific/Auckland")
    nz = reopened(ctx)
    assert nz.today() == TOMORROW
    assert TOMORROW in days_of(nz, "chat")  # the same file, now dated in Auckland
    catch_up = service.PlanOptions(mode=PlanMode.catch_up_recent, sources=["chat"])
    assert TOMORROW in {i.day for i in service.preview_plan(nz, options=catch_up).items}
    monkeypatch.delenv("SOFTCOPY_TIMEZONE")
    assert TOMORROW not in days_of(reopened(ctx), "chat")  # and back


def test_setting_the_timezone_redates_a_scanned_git_source(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ctx.settings.home / "repo"
    repo.mkdir()
    run_git(repo, "init", "-q")
    (repo / "log.txt").write_bytes(b"")
    commit(repo, b"evening work", EVENING)
    add_source(ctx.settings.home, name="code", kind="git", path="repo")
    utc = reopened(ctx)
    assert days_of(utc, "code") == {DEMO_TODAY}
    monkeypatch.setenv("SOFTCOPY_TIMEZONE", "Pacific/Auckland")
    assert days_of(reopened(ctx), "code") == {TOMORROW}  # its refs did not move


def test_a_record_at_the_end_of_time_east_of_utc_is_future_dated_not_a_crash(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """9999-12-31T12:00Z is already year 10000 in Auckland, which no date holds: the scan
    raised OverflowError (a traceback from coverage, plan and run). It is dated the last
    day there is, and warned of as any future-dated item."""
    monkeypatch.setenv("SOFTCOPY_TIMEZONE", "Pacific/Auckland")
    nz = reopened(ctx)
    ends = [
        {"id": "end", "ts": "9999-12-31T12:00:00Z", "text": "at the end of time"},
        {"id": "start", "ts": "0001-01-01T00:00:00-05:00", "text": "at its start"},
    ]
    with nz.settings.source("chat").path.open("a") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in ends)
    report = service.coverage(nz, sources=["chat"])
    assert report.future_days == [FutureDays("chat", [date.max], 1, TOMORROW)]
    assert date(1, 1, 1) in {c.day for c in report.cells}
    monkeypatch.setenv("SOFTCOPY_TIMEZONE", "America/Los_Angeles")  # 0001-01-01 is gone there
    west = reopened(ctx)
    assert date.min in {c.day for c in service.coverage(west, sources=["chat"]).cells}


def test_changing_a_sources_options_redates_it(ctx: service.Context) -> None:
    """A kind's options are part of its setup too: `source add` with the same name and path
    updates them (another ts_field), and the records move to the days that field says,
    though the file did not change."""
    yesterday = DEMO_TODAY - timedelta(days=1)
    line = {"id": "x", "ts": EVENING, "when": f"{yesterday}T09:00:00+00:00", "text": "x"}
    path = ctx.settings.source("chat").path
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    before = service.coverage(ctx, sources=["chat"]).cells
    today_items = next(c.items for c in before if c.day == DEMO_TODAY and c.items)
    add_source(
        ctx.settings.home, name="chat", kind="jsonl", path=path, options={"ts_field": "when"}
    )
    again = service.open_context(ctx.settings.home)
    again.clock = ctx.clock
    after = service.coverage(again, sources=["chat"]).cells
    # only the one record has a `when`: every other one is now a bad record, and it is
    # dated yesterday (it was today's)
    assert {c.day for c in after if c.items} == {yesterday}
    assert today_items > 0
