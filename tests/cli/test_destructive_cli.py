"""The CLI face of the destructive-plan guard: one line naming what would be removed and
what to pass, exit 2, nothing written; `source add --replace`; future-dated warnings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from softcopy.cli.main import main
from softcopy.demo import build_demo
from softcopy.errors import EnvironmentFault
from softcopy.ingestion import service
from softcopy.ingestion.states import PlanMode

INLINE = ["--executor", "inline"]
# the CLI reads the real clock: these demos end today, and the catch-up window spans them
TODAY = datetime.now(UTC).date()
RANGE = ["--range-start-day", str(TODAY - timedelta(days=29)), "--range-end-day", str(TODAY)]
CATCH_UP = ["--mode", "catch_up_recent", "--lookback-days", "29"]


@pytest.fixture
def live_home(home: Path) -> Path:
    build_demo(home, days=30, today=TODAY)
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_source_add_needs_replace_to_repoint(live_home: Path, capsys) -> None:
    config = live_home / "softcopy.toml"
    before = config.read_bytes()
    other = live_home / "sources" / "other.jsonl"
    other.write_text('{"ts": "2026-03-30T10:00:00Z", "text": "hi"}\n')
    code, _, err = run(
        capsys, "source", "add", "chat", "--kind", "jsonl", "--path", "sources/other.jsonl"
    )
    line = one_line(err)
    assert code == 2 and "source 'chat' already reads" in line and "chat.jsonl" in line
    assert str(other) in line and line.endswith("pass --replace to re-point it")
    assert config.read_bytes() == before  # nothing written
    code, _, err = run(
        capsys, "source", "add", "chat", "--kind", "mbox", "--path", "sources/chat.jsonl"
    )
    assert code == 2 and "as jsonl" in one_line(err)  # another kind is re-pointing too

    code, _, err = run(
        capsys, "source", "add", "chat", "--kind", "jsonl", "--path", "sources/chat.jsonl"
    )
    assert code == 0, err  # the same path again: idempotent
    assert config.read_bytes() == before
    code, _, err = run(
        capsys,
        "source",
        "add",
        "chat",
        "--kind",
        "jsonl",
        "--path",
        "sources/other.jsonl",
        "--replace",
    )
    assert code == 0, err
    code, out, _ = run(capsys, "source", "list", "--json")
    assert {r["name"]: r["path"] for r in json.loads(out)}["chat"] == str(other)


def test_truncated_source_plan_is_one_line_and_exit_2(live_home: Path, capsys) -> None:
    code, _, err = run(capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, *INLINE)
    assert code == 0, err
    (live_home / "sources" / "chat.jsonl").write_text("")
    for command in ("plan", "run"):
        code, out, err = run(capsys, "ingestion", command, *CATCH_UP)
        line = one_line(err)
        assert code == 2 and out == ""
        assert line.startswith("error: the plan would remove ")
        assert "published items of source 'chat' on " in line and " → 0)" in line
        assert line.endswith("pass --allow-shrink to do it anyway")
    code, out, _ = run(capsys, "ingestion", "jobs", "--json")
    assert len(json.loads(out)) == 1  # only the backfill: the refused run made no job
    code, out, err = run(capsys, "ingestion", "plan", *CATCH_UP, "--allow-shrink", "--json")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["params"]["allow_shrink"] is True and plan["cells"] > 0
    code, out, err = run(capsys, "ingestion", "run", "--plan-id", str(plan["id"]), *INLINE)
    assert code == 0, err


def test_reconcile_repair_says_why_there_is_no_repair_plan(live_home: Path, capsys) -> None:
    run(capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, *INLINE)
    (live_home / "sources" / "chat.jsonl").write_text("")
    code, out, _ = run(capsys, "ingestion", "reconcile", "--repair")
    assert code == 1 and "source_drift" in out
    assert "no repair plan: the plan would remove" in out
    assert "--reconciliation-id" in out and "--allow-shrink" in out


def test_coverage_warns_of_future_dated_items(live_home: Path, capsys) -> None:
    with (live_home / "sources" / "chat.jsonl").open("a") as handle:
        handle.write('{"id": "z", "ts": "9999-12-31T12:00:00Z", "text": "from the future"}\n')
    code, out, err = run(capsys, "ingestion", "coverage", "--source", "chat")
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "source 'chat' has 1 items dated after today" in warnings[0]
    assert warnings[0].endswith("on 1 day(s): 9999-12-31")
    code, out, _ = run(capsys, "ingestion", "coverage", "--json")
    (future,) = json.loads(out)["future_days"]
    assert future["source"] == "chat" and future["days"] == ["9999-12-31"] and future["items"] == 1
    code, out, _ = run(capsys, "ingestion", "reconcile")
    assert code == 1 and "future_dated: chat 9999-12-31" in out


def published_then_queued(home: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Every source published, then a forced backfill of chat queued (no worker yet): the
    id of that job, as the command line takes it."""
    code, _, err = run(capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, *INLINE)
    assert code == 0, err
    options = service.PlanOptions(
        PlanMode.backfill_range,
        sources=["chat"],
        range_start_day=TODAY - timedelta(days=29),
        range_end_day=TODAY,
        force=True,
    )
    queued = service.enqueue(service.open_context(home), options=options)
    assert queued.job is not None
    return str(queued.job.job.id)


def test_job_failed_on_a_cut_source_says_what_resume_would_remove(live_home: Path, capsys) -> None:
    """A job queued before its source was cut fails the day it would empty; `show` says
    what resuming would remove and how; `resume` is refused unless --allow-shrink."""
    job = published_then_queued(live_home, capsys)
    (live_home / "sources" / "chat.jsonl").write_text("")
    code, out, err = run(capsys, "ingestion", "worker", job)
    assert code == 0, err
    code, out, err = run(capsys, "ingestion", "show", job)
    assert "status   failed" in out
    assert "would remove" in out and "published items (" in out
    blocked = [line for line in out.splitlines() if line.startswith("  blocked  ")]
    assert len(blocked) == 1 and "source 'chat'" in blocked[0], out
    assert out.rstrip().endswith(f"next     softcopy ingestion resume {job} --allow-shrink")
    code, out, err = run(capsys, "ingestion", "resume", job)
    line = one_line(err)
    assert code == 2 and line.startswith("error: the plan would remove ")
    assert line.endswith("pass --allow-shrink to do it anyway")
    code, out, err = run(capsys, "ingestion", "resume", job, "--allow-shrink")
    assert code == 0, err
    assert "status   succeeded" in out


def test_a_cancelled_job_on_a_cut_source_is_shown_its_allow_shrink_too(
    live_home: Path, capsys
) -> None:
    """`show` asks whether a resume would succeed for every resumable job, not only a
    failed one: a cancelled job whose source was cut since is told what resume would
    remove and to pass --allow-shrink (it was told a plain resume, which is refused)."""
    job = published_then_queued(live_home, capsys)
    code, _, err = run(capsys, "ingestion", "cancel", job)
    assert code == 0, err
    (live_home / "sources" / "chat.jsonl").write_text("")
    code, out, err = run(capsys, "ingestion", "show", job)
    assert code == 0 and "status   cancelled" in out, err
    blocked = [line for line in out.splitlines() if line.startswith("  blocked  ")]
    assert len(blocked) == 1 and "source 'chat'" in blocked[0], out
    assert out.rstrip().endswith(f"next     softcopy ingestion resume {job} --allow-shrink")


def test_ingest_of_a_cut_source_keeps_its_published_days(live_home: Path, capsys) -> None:
    """The legacy in-process flow follows the same rule: publish empties no published day
    unless --allow-shrink (`ingest` and `memory publish`)."""
    code, _, err = run(capsys, "ingest")
    assert code == 0, err
    code, before, _ = run(capsys, "memory", "search", "the", "--source", "chat", "--json")
    assert json.loads(before)
    (live_home / "sources" / "chat.jsonl").write_text("")
    code, out, _ = run(capsys, "ingest", "--json")
    failures = json.loads(out)["failures"]
    assert code == 1 and failures and all(f["shrink"] for f in failures)
    assert {(f["stage"], f["source"]) for f in failures} == {("publish", "chat")}
    code, out, err = run(capsys, "ingest", "--source", "chat")
    assert code == 1 and "Traceback" not in err
    failed = [line for line in err.splitlines() if line.startswith("failed: publish chat ")]
    assert failed and all("published items (" in line and " → 0)" in line for line in failed)
    assert "--allow-shrink publishes them anyway" in err
    code, after, _ = run(capsys, "memory", "search", "the", "--source", "chat", "--json")
    assert after == before  # the index kept every chat item
    code, out, err = run(capsys, "memory", "publish", "--source", "chat", *RANGE)
    assert code == 1 and "--allow-shrink" in err
    code, _, err = run(capsys, "ingest", "--source", "chat", "--allow-shrink")
    assert code == 0, err
    code, after, _ = run(capsys, "memory", "search", "the", "--source", "chat", "--json")
    assert json.loads(after) == []


def test_show_of_a_resumable_job_on_a_home_it_cannot_write_still_shows_it(
    live_home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`show` asks check_resume, which refreshes the sources' scan; on a read-only home
    that write fails, and `show`, a read, still shows the job with a plain resume."""
    job = published_then_queued(live_home, capsys)
    code, _, err = run(capsys, "ingestion", "cancel", job)
    assert code == 0, err

    def read_only(*args: object, **kwargs: object) -> None:
        raise EnvironmentFault(str(live_home), "the file system is read-only")

    monkeypatch.setattr(service, "check_resume", read_only)
    code, out, err = run(capsys, "ingestion", "show", job)
    assert code == 0 and "status   cancelled" in out and err == "", err
    assert out.rstrip().endswith(f"next     softcopy ingestion resume {job}")
