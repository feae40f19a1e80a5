"""Bad and repaired records through the control plane: coverage, runs, reconcile, the CLI
and the dashboard see them; none of them raises, and none fails a day it is not of."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from softcopy.cli.main import main
from softcopy.dashboard.coverage import problems_html
from softcopy.ingestion import service
from softcopy.ingestion.states import FindingKind, JobStatus, PlanMode
from softcopy.memory.search import search
from tests.conftest import DEMO_TODAY
from tests.ingestion.test_api import (  # noqa: F401 (fixtures)
    fetch,
    jp_server_config,
    wait_for_job,
)

CUT_DAY = DEMO_TODAY - timedelta(days=3)
CUT = f'{{"id": "cut", "ts": "{CUT_DAY}T10:00:00Z", "text": "half an emoji: \\ud83d"}}\n'
UNDATED = '{"id": "broken", "ts": \n'


def break_sources(ctx: service.Context, undated: int = 1) -> None:
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write(CUT + UNDATED * undated)
    notes = ctx.settings.source("notes").path
    (notes / "2026-02-30.md").write_text("a day that does not exist")


def test_coverage_of_a_lone_surrogate_and_undated_records_lists_them(
    ctx: service.Context,
) -> None:
    break_sources(ctx)
    report = service.coverage(ctx)
    described = [(p.source, p.day, p.repaired) for p in report.problems]
    assert described == [
        ("chat", None, False),  # undated first: problems of the source
        ("notes", None, False),
        ("chat", CUT_DAY, True),  # a warning: the item indexes, repaired
    ]
    assert report.problems_total == 3
    assert "2026-02-30" in report.problems[1].reason
    latest = service.latest_coverage(ctx)
    assert latest is not None and latest.problems == report.problems


def test_a_report_lists_a_bounded_number_and_counts_them_all(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softcopy.ingestion import coverage

    break_sources(ctx, undated=4)
    monkeypatch.setattr(coverage, "PROBLEMS_LISTED", 3)
    report = service.coverage(ctx)
    assert [(p.source, p.day) for p in report.problems] == [("chat", None)] * 3
    assert report.problems_total == 6


def test_a_strict_backfill_succeeds_and_indexes_the_repaired_text(ctx: service.Context) -> None:
    break_sources(ctx)
    outcome = service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range,
            range_start_day=DEMO_TODAY - timedelta(days=29),
            range_end_day=DEMO_TODAY,
        ),
    )
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    hits = search(ctx.settings, query="emoji", k=5, sources=["chat"], since=None)
    assert [h.title for h in hits if h.item_id == "jsonl:chat.jsonl:cut"] == [
        "half an emoji: \ufffd"
    ]


def test_reconcile_reports_each_problem_as_a_source_problem(ctx: service.Context) -> None:
    break_sources(ctx)
    report = service.reconcile(ctx)
    found = [f for f in report.findings if f.kind is FindingKind.source_problem]
    assert sorted((f.source, f.day) for f in found) == [("chat", None)] * 2 + [("notes", None)]
    assert any("line" in f.detail and "repaired" in f.detail for f in found)


def test_cli_coverage_prints_a_line_per_problem_capped(
    ctx: service.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    break_sources(ctx, undated=12)
    assert main(["ingestion", "coverage"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(lines) == 11 and lines[-1] == "problem: … and 4 more (--json)"
    assert "chat (day unknown): " in lines[0] and "chat.jsonl:line" in lines[0]
    assert main(["ingestion", "coverage", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["problems_total"] == 14 and len(got["problems"]) == 14


def test_dashboard_lists_a_few_problems() -> None:
    from softcopy.ingestion.coverage import RecordProblem

    problems = [
        RecordProblem("chat", f"chat.jsonl:line {n}", "<bad>", None, False) for n in range(7)
    ]
    shown = problems_html(problems, 7)
    assert shown.count("<li>") == 6 and "… and 2 more" in shown and "&lt;bad&gt;" in shown
    assert problems_html([], 0) == ""


async def test_the_api_answers_with_the_problems_never_a_500(
    ctx: service.Context,
    fetch: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    break_sources(ctx)
    code, taken = await fetch("coverage", body={})
    assert code == 201 and taken["problems_total"] == 3
    assert [p["repaired"] for p in taken["problems"]] == [False, False, True]
    code, latest = await fetch("coverage")
    assert code == 200 and latest["problems"] == taken["problems"]
    assert (await fetch("jobs"))[0] == 200
    code, report = await fetch("reconcile", body={})
    assert code in (200, 201)
    kinds = [f["kind"] for f in report["findings"]]
    assert kinds.count("source_problem") == 3


def test_the_dashboard_shows_them_on_coverage_and_reconcile(ctx: service.Context) -> None:
    """The real board, not only its HTML helper: Show and the first paint list the undated
    records and the repair warning, and the reconcile tab lists them as findings."""
    from softcopy.dashboard import Dashboard

    break_sources(ctx)
    board = Dashboard(ctx, poll_interval=0)
    try:
        board.coverage.refresh()  # Show: a new snapshot
        shown = board.coverage.problems.value
        assert "chat.jsonl:line" in shown and "2026-02-30" in shown and "repaired" in shown
        board.coverage.problems.value = ""
        board.coverage.load()  # the first paint: the newest snapshot
        assert board.coverage.problems.value == shown
        board.reconcile.reconcile()
        findings = board.reconcile.findings.value
        assert "source problem" in findings.replace("_", " ") and "2026-02-30" in findings
    finally:
        board.close()


def test_a_job_that_skips_bad_records_says_how_many_in_its_log(ctx: service.Context) -> None:
    """--skip-bad-records counts and logs: the day's checkpoint row names its skips."""
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write(f'{{"id": "no-text", "ts": "{CUT_DAY}T10:00:00Z"}}\n')
    outcome = service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range,
            range_start_day=CUT_DAY,
            range_end_day=CUT_DAY,
            skip_bad_records=True,
        ),
    )
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    rows = service.job_logs(ctx, job_id=outcome.job.job.id or 0, source="chat")
    [row] = [r for r in rows if r.event == "checkpoint" and r.message.startswith("export")]
    assert row.message.endswith(", 1 bad records skipped") and row.fields["skipped"] == 1


async def test_the_api_resumes_a_job_that_failed_on_bad_records_skipping_them(
    ctx: service.Context,
    fetch: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    """POST /jobs/{id}/resume takes skip_bad_records (a strict boolean, documented), as the
    CLI's `resume --skip-bad-records` and the dashboard do: the job goes on and succeeds."""
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write(f'{{"id": "no-text", "ts": "{CUT_DAY}T10:00:00Z"}}\n')
    day = service.PlanOptions(
        mode=PlanMode.backfill_range,
        sources=["chat"],
        range_start_day=CUT_DAY,
        range_end_day=CUT_DAY,
    )
    outcome = service.run(ctx, options=day)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.failed
    job_id = outcome.job.job.id
    for wrong in ("yes", 1, "true", None, [True]):
        code, error = await fetch("jobs", job_id, "resume", body={"skip_bad_records": wrong})
        assert code == 400 and "skip_bad_records" in error["message"], (wrong, error)
    assert service.show_job(ctx, job_id=job_id or 0).job.status is JobStatus.failed
    code, view = await fetch("jobs", job_id, "resume", body={"skip_bad_records": True})
    assert code == 202, view
    assert service.get_plan(ctx, plan_id=view["job"]["plan_id"]).plan.params["skip_bad_records"]
    ended = await wait_for_job(fetch, job_id or 0)
    assert ended["job"]["status"] == "succeeded", ended["job"]
    rows = service.job_logs(ctx, job_id=job_id or 0, source="chat")
    assert any(r.event == "checkpoint" and r.fields.get("skipped") == 1 for r in rows)
    code, doc = await fetch("openapi.json")
    field = doc["components"]["schemas"]["ResumeRequest"]["properties"]["skip_bad_records"]
    assert code == 200 and field["type"] == "boolean" and "unreadable" in field["description"]
