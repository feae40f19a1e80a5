"""The job views as widgets over a real demo home and real jobs: a job's title, pace and
timeline; the log's newest page, older pages and filters; steps with failures first, a
page at a time; a large job asks before it is cancelled; Resume is off with a reason until
bad records are skipped, then resumes; deep links; the repair run's executor."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from softcopy.dashboard import Dashboard
from softcopy.dashboard.job import (
    CONFIRM_CELLS,
    JobDetail,
    job_link,
    now_running,
    progress_text,
    verification_html,
)
from softcopy.dashboard.job_logs import LogView
from softcopy.dashboard.job_steps import StepsView, notebook_url, ordered, server_base_url
from softcopy.dashboard.jobs import JobsPanel, linked_job
from softcopy.ingestion import service
from softcopy.ingestion.models import IngestionJob, JobStep, Verification
from softcopy.ingestion.states import JobStatus, PlanMode, Stage, StepStatus
from softcopy.ingestion.summary import summarize
from tests.conftest import DEMO_TODAY

WEEK = (DEMO_TODAY - timedelta(days=6), DEMO_TODAY)
SPOILED = date(2026, 3, 20)


def backfill(start: date, end: date, **options: object) -> service.PlanOptions:
    return service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=start, range_end_day=end, **options
    )


def step(ordinal: int, status: StepStatus, artifact: str | None = None) -> JobStep:
    return JobStep(
        id=100 + ordinal,
        job_id=3,
        ordinal=ordinal,
        stage=Stage.export,
        source="notes",
        start_day=date(2026, 3, 1),
        end_day=date(2026, 3, 1),
        days=["2026-03-01"],
        status=status,
        artifact=artifact,
    )


def test_links_go_under_the_servers_base_url(monkeypatch) -> None:
    monkeypatch.setenv("SCRIPT_NAME", "/user/ada/voila/render/ingestion.ipynb")
    assert server_base_url() == "/user/ada/"
    assert notebook_url(3, 9) == "/user/ada/api/ingestion/jobs/3/steps/9/notebook?format=html"
    assert job_link(7) == "/user/ada/voila/render/ingestion.ipynb?job=7"
    monkeypatch.delenv("SCRIPT_NAME")
    assert server_base_url() == "/" and job_link(7) == "?job=7"


def test_a_deep_link_names_its_job(monkeypatch) -> None:
    assert linked_job("token=abc&job=12") == 12
    assert linked_job("job=twelve") is None and linked_job("") is None
    monkeypatch.setenv("QUERY_STRING", "job=4")
    assert linked_job() == 4


@pytest.mark.parametrize("ok", [True, False])
def test_a_verification_shows_its_outcome_and_every_problem(ok: bool) -> None:
    problems = [] if ok else [{"source": "notes", "day": "2026-03-01", "problem": "<gone>"}]
    found = Verification(
        job_id=3,
        created_at=datetime(2026, 3, 31, tzinfo=UTC),
        ok=ok,
        cells_checked=12,
        problems=problems,
    )
    shown = verification_html(found)
    if ok:
        assert "sc-ok" in shown and "12 cells checked" in shown
    else:
        assert "sc-error" in shown and "1 problem in 12 cells" in shown
        assert "problem: &lt;gone&gt;" in shown  # escaped
    assert verification_html(None) == ""


def test_steps_show_failed_and_running_first_a_page_at_a_time() -> None:
    steps = [step(i, StepStatus.succeeded) for i in range(120)]
    steps[90].status = StepStatus.failed
    steps[7].status = StepStatus.running
    steps[3].artifact = "runs/3/3-export.ipynb"
    view = service.JobView(
        job=IngestionJob(id=3, plan_id=1, status=JobStatus.running, executor="x", chunk_days=7),
        steps=[service.StepView(s, 1) for s in steps],
    )
    assert [s.step.ordinal for s in ordered(view.steps)[:3]] == [90, 7, 0]
    clock = SimpleNamespace(clock=lambda: datetime(2026, 3, 31, tzinfo=UTC))
    panel = StepsView(clock, page_size=50)  # type: ignore[arg-type]
    panel.show(view)
    first_rows = re.findall(r"<tr><td>(\d+)</td>", panel.table.value)
    assert first_rows[:3] == ["90", "7", "0"] and len(first_rows) == 50
    assert "steps 1 to 50 of 120 · 1 failed step and 1 running step first" in panel.caption.value
    assert panel.previous_button.disabled and not panel.next_button.disabled
    panel.next()
    panel.next()
    assert panel.page == 2 and panel.next_button.disabled
    assert "steps 101 to 120 of 120" in panel.caption.value
    panel.page = 0  # the notebook of a step on this page, in the page, not a download
    assert panel.notebook_choice.options == (("#3 export notes 2026-03-01", 103),)
    panel.show_notebook()
    assert 'src="/api/ingestion/jobs/3/steps/103/notebook?format=html"' in panel.notebook.value
    assert "<iframe" in panel.notebook.value and 'sandbox=""' in panel.notebook.value
    assert "download" not in panel.notebook.value


def test_a_running_job_says_what_runs_now_and_when_it_should_end() -> None:
    now = datetime(2026, 3, 31, 12, 0, 40, tzinfo=UTC)
    steps = [step(i, StepStatus.succeeded) for i in range(4)] + [
        step(i, StepStatus.pending) for i in range(4, 8)
    ]
    steps[4].status, steps[4].started_at = StepStatus.running, now - timedelta(seconds=5)
    job = IngestionJob(
        id=3,
        plan_id=1,
        status=JobStatus.running,
        executor="inline",
        chunk_days=7,
        started_at=now - timedelta(seconds=40),
        cells_total=8,
        cells_done=4,
    )
    views = [service.StepView(s, 1 if s.status is StepStatus.succeeded else 0) for s in steps]
    summary = summarize(job, [(v.step, v.days_done) for v in views], title="t", now=now)
    view = service.JobView(job=job, steps=views, summary=summary)
    assert now_running(view, now) == (
        "now running: step 4 of 8 · export notes 2026-03-01 … 2026-03-01 · 0/1 cell · for 5s"
    )
    assert progress_text(summary) == "4/8 cells (50%) · elapsed 40s · 0.1 cells/s · ETA 40s"
    queued = service.JobView(
        job=IngestionJob(**{**job.model_dump(), "status": JobStatus.queued}),
        steps=views,
        summary=summary,
        unclaimed_seconds=90,
    )
    assert now_running(queued, now).startswith("waiting for a worker: unclaimed for ")


def test_a_job_says_what_it_is_how_fast_it_went_and_draws_its_timeline(ctx) -> None:
    outcome = service.run(ctx, options=backfill(*WEEK))
    assert outcome.job is not None
    job_id = outcome.job.job.id
    jobs = JobsPanel(ctx, poll_interval=0)
    jobs.refresh()
    assert jobs.job_id == job_id
    title = f"backfill {WEEK[0]} → {WEEK[1]} · all sources"
    row = jobs._rows[job_id]
    assert title in row.title.value
    total = outcome.job.job.cells_total
    assert row.cells.value == f"{total}/{total} cells" and row.took.value
    assert row.rate.value.endswith(" cells/s") and row.eta.value == ""  # ended: no ETA
    detail = jobs.detail
    assert f"Job {job_id} · {title}" in detail.header.value
    assert f'href="?job={job_id}"' in detail.header.value
    assert re.fullmatch(
        rf"{total}/{total} cells \(100%\) · elapsed \S+ · [\d.]+ cells/s",
        detail.progress_label.value,
    ), detail.progress_label.value
    assert detail.running_line.value == ""  # it ended
    bars = detail.timeline.value.count("<rect")
    assert 0 < bars <= len(outcome.job.steps)  # touching steps may share a bar
    assert "notes · export" in detail.timeline.value
    assert "days" not in detail.progress_label.value + detail.steps.caption.value  # one unit
    jobs.close()


def test_the_log_shows_the_newest_rows_pages_back_and_filters(ctx) -> None:
    outcome = service.run(ctx, options=backfill(*WEEK))
    assert outcome.job is not None
    job_id = outcome.job.job.id
    total = service.log_tail(ctx, job_id=job_id, limit=1).total
    assert total > 25
    logs = LogView(ctx, page=10)
    logs.job_id = job_id
    assert logs.caption.value.count(f"showing the last 10 of {total:,} rows") == 1
    newest = service.log_tail(ctx, job_id=job_id, limit=10).records
    assert logs.rows.value.count("\n") == 9 and newest[-1].message in logs.rows.value
    assert not logs.older_button.disabled and logs.newest_button.disabled
    logs.show_older()
    assert f"showing rows {total - 19:,} to {total - 10:,} of {total:,}" in logs.caption.value
    assert newest[-1].message not in logs.rows.value and not logs.newest_button.disabled
    logs.show_newest()
    assert "showing the last 10" in logs.caption.value

    logs.source.value = "notes"  # a filter: the newest page of the matching rows
    matching = service.log_tail(ctx, job_id=job_id, source="notes", limit=10)
    assert f"of {matching.total:,} matching rows" in logs.caption.value
    assert all(" notes " in line for line in logs.rows.value.splitlines()[1:-1])
    logs.source.value = "any"
    logs.level.value = "error"
    assert "no matching rows" in logs.caption.value and logs.rows.value == ""
    logs.level.value = "any"
    logs.step.value = "#0"  # sent on Enter
    step_rows = service.log_tail(ctx, job_id=job_id, step=0, limit=10).total
    assert f"{step_rows:,} matching rows" in logs.caption.value
    logs.step.value = "zero"
    assert logs.message == "read the log failed: step: 'zero' is not a step number"
    logs.step.value = ""  # cleared: every row again
    assert logs.message == "" and f"of {total:,} rows" in logs.caption.value
    logs.day.value = WEEK[0]
    day_rows = service.log_tail(ctx, job_id=job_id, day=WEEK[0], limit=10).total
    assert 0 < day_rows < total and f"{day_rows:,} matching rows" in logs.caption.value


def test_a_large_job_asks_before_it_is_cancelled(ctx) -> None:
    queued = service.enqueue(ctx, options=backfill(DEMO_TODAY - timedelta(days=29), DEMO_TODAY))
    assert queued.job is not None and queued.job.job.cells_total >= CONFIRM_CELLS
    job_id = queued.job.job.id
    detail = JobDetail(ctx)
    detail.job_id = job_id
    assert "waiting for a worker" in detail.running_line.value
    detail.cancel()
    assert detail.confirm.layout.display == "flex" and detail.status == JobStatus.queued
    assert f"Cancel job {job_id}?" in detail.confirm_text.value
    detail.keep_running()
    assert detail.confirm.layout.display == "none"
    assert service.show_job(ctx, job_id=job_id).job.status is JobStatus.queued
    detail.cancel()
    detail.confirm_cancel()
    assert detail.status == JobStatus.cancelled and detail.confirm.layout.display == "none"
    assert not detail.resume_button.disabled and detail.resume_reason == ""
    # another job takes its cells: a resume would be refused, so Resume says why it is off
    month = backfill(DEMO_TODAY - timedelta(days=29), DEMO_TODAY)
    other = service.enqueue(ctx, options=month)
    assert other.job is not None
    detail.recheck_seconds = 0  # the panel asks again every few seconds; the test, now
    detail.refresh()
    assert detail.resume_button.disabled
    assert f"live job {other.job.job.id} holds some of its cells" in detail.resume_reason


def spoil_chat(home: Path, day: date) -> None:
    """A chat record of `day` cut short: its export fails unless bad records are skipped."""
    with (home / "sources" / "chat.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "bad-1", "ts": f"{day}T10:00:00Z", "text": 5}) + "\n")


def test_resume_is_off_with_a_reason_until_bad_records_are_skipped(ctx, demo_home) -> None:
    spoil_chat(demo_home, SPOILED)
    failed = service.run(ctx, options=backfill(SPOILED, SPOILED, sources=["chat"]))
    assert failed.job is not None and failed.job.job.status is JobStatus.failed
    job_id = failed.job.job.id
    check = service.check_resume(ctx, job_id=job_id)
    assert check.blocker is None and check.bad_record_days == 1 and check.fails_on_bad_records

    board = Dashboard(ctx, poll_interval=0)
    detail = board.jobs.detail
    board.jobs.show(job_id)
    assert "line 44: text field" in detail.header.value  # the error: facts, no CLI flag
    assert "--skip-bad-records" not in detail.header.value
    assert detail.skip_box.layout.display == "" and not detail.skip_box.value
    assert detail.resume_button.disabled
    assert "unreadable records (1 day of them)" in detail.resume_reason
    assert "Resume is off" in detail.reason.value
    detail.skip_box.value = True  # the advice, taken where it is given
    assert not detail.resume_button.disabled and detail.reason.value == ""
    detail.resume()
    assert detail.message_kind == "ok" and "skipping bad records" in detail.message

    def ended() -> bool:
        board.jobs.refresh()
        return detail.status not in {"queued", "running", "cancelling"}

    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while not ended():
        assert datetime.now(UTC) < deadline, "the resumed job did not end"
    assert detail.status == JobStatus.succeeded
    assert service.check_resume(ctx, job_id=job_id).blocker  # succeeded: nothing to resume
    board.close()


def test_a_deep_link_opens_the_dashboard_on_its_job(ctx, monkeypatch) -> None:
    first = service.run(ctx, options=backfill(*WEEK))
    older = WEEK[0] - timedelta(days=7)
    second = service.enqueue(ctx, options=backfill(older, older))
    assert first.job is not None and second.job is not None
    monkeypatch.setenv("QUERY_STRING", f"token=t&job={first.job.job.id}")
    board = Dashboard(ctx, poll_interval=0)
    assert board.jobs.job_id == first.job.job.id  # not the live (newer) one
    assert board.tabs.selected_index == 2
    board.close()
    monkeypatch.setenv("QUERY_STRING", "job=999")
    board = Dashboard(ctx, poll_interval=0)
    assert board.jobs.detail.message == "show job failed: job 999 not found"
    board.close()


def test_a_repair_runs_on_the_executor_chosen_in_plan(ctx) -> None:
    board = Dashboard(ctx, poll_interval=0)
    assert board.reconcile.executor == board.plan.executor  # the faces' default
    board.plan.executor = "inline"
    assert board.reconcile.executor == "inline"
    board.close()
