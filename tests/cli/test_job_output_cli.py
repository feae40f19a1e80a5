"""Issue 11: job commands summarise instead of dumping steps; logs show the newest rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import typer

from softcopy.cli.ingestion import app as ingestion_app
from softcopy.cli.main import main

RANGE = ["--range-start-day", "2026-03-02", "--range-end-day", "2026-03-31"]
INLINE = ["--executor", "inline"]
DEMO_DAY = date(2026, 3, 20)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def job_id(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> int:
    code, out, err = run(
        capsys,
        "ingestion",
        "run",
        "--mode",
        "backfill_range",
        *RANGE,
        *INLINE,
        "--chunk-days",
        "2",  # many steps: the summary must not grow with them
        "--json",
    )
    assert code == 0, err
    return json.loads(out)["job"]["job"]["id"]


def test_show_prints_a_bounded_summary_with_the_next_command(job_id: int, capsys) -> None:
    code, out, _ = run(capsys, "ingestion", "show", str(job_id), "--json")
    view = json.loads(out)
    steps, cells = len(view["steps"]), view["job"]["cells_total"]
    assert steps > 20 and view["summary"]["cells_done"] == cells
    assert view["summary"]["title"] == "backfill 2026-03-02 → 2026-03-31 · all sources"
    code, out, _ = run(capsys, "ingestion", "show", str(job_id))
    lines = out.splitlines()
    assert code == 0 and len(lines) <= 8, out
    assert lines[0] == f"job {job_id}: backfill 2026-03-02 → 2026-03-31 · all sources"
    assert f"{cells}/{cells} cells (100%)" in out and "succeeded" in out
    assert lines[-1].split() == ["next", "softcopy", "ingestion", "verify", str(job_id)]
    assert "days" not in out.replace("--", "")  # one unit: cells
    code, out, _ = run(capsys, "ingestion", "verify", str(job_id))  # a positional job id
    assert code == 0 and "passed" in out
    code, out, _ = run(capsys, "ingestion", "show", str(job_id))
    assert "verify" not in out.split("verified")[-1] and "passed" in out  # nothing left to do
    code, out, _ = run(capsys, "ingestion", "show", str(job_id), "--steps")
    table = [line for line in out.splitlines() if line.startswith("│")]
    assert code == 0 and len(table) == steps
    grouped = [line.split("│")[1:3] for line in table]
    order = {"export": 0, "embed": 1, "publish": 2}
    keys = [(source.strip(), order[stage.strip()]) for source, stage in grouped]
    assert keys == sorted(keys)  # by source, then stage in pipeline order


def spoil_chat(home: Path, day: str) -> None:
    """A chat record of `day` cut short: its day's export fails unless bad records are skipped."""
    with (home / "sources" / "chat.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "bad-1", "ts": f"{day}T10:00:00Z", "text": 5}) + "\n")


def test_a_failed_job_names_its_step_and_advises_resume(demo_home: Path, capsys) -> None:
    spoil_chat(demo_home, "2026-03-20")
    code, out, err = run(
        capsys,
        "ingestion",
        "run",
        "--mode",
        "backfill_range",
        "--range-start-day",
        "2026-03-20",
        "--range-end-day",
        "2026-03-20",
        "--source",
        "chat",
        *INLINE,
    )
    assert code == 1, err
    lines = out.splitlines()
    assert len(lines) <= 8 and "failed" in lines[1]
    assert any(line.split()[:2] == ["failed", "step"] and "export chat" in line for line in lines)
    job_id = lines[0].split(":")[0].split()[1]
    assert lines[-1].split() == [
        "next",
        "softcopy",
        "ingestion",
        "resume",
        job_id,
        "--skip-bad-records",
    ]


def test_logs_show_the_newest_rows_and_page_back(job_id: int, capsys) -> None:
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--limit", "5000", "--json")
    every = json.loads(out)
    ids = [r["id"] for r in every]
    assert len(ids) > 60 and ids == sorted(ids)
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--limit", "25")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 26
    assert [int(line.split()[0]) for line in lines[:-1]] == ids[-25:]  # the newest, in order
    assert lines[-1] == (
        f"showing the last 25 of {len(ids)} rows; older: "
        f"softcopy ingestion logs {job_id} --before {ids[-25]}"
    )
    code, out, _ = run(
        capsys, "ingestion", "logs", str(job_id), "--limit", "25", "--before", str(ids[-25])
    )
    assert [int(line.split()[0]) for line in out.splitlines()[:-1]] == ids[-50:-25]
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--limit", "25", "--page", "2")
    assert [int(line.split()[0]) for line in out.splitlines()[:-1]] == ids[-50:-25]
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--page", "1000")
    assert out.splitlines() == [f"no rows on this page ({len(ids)} in all)"]


def test_logs_filter_by_level_step_source_and_day(job_id: int, capsys) -> None:
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--limit", "5000", "--json")
    every = json.loads(out)
    mail_day = next(r for r in every if r["source"] == "mail" and r["day"])["day"]
    code, out, _ = run(
        capsys,
        "ingestion",
        "logs",
        str(job_id),
        "--source",
        "mail",
        "--day",
        mail_day,
        "--json",
    )
    got = json.loads(out)
    want = [r["id"] for r in every if r["source"] == "mail" and r["day"] == mail_day]
    assert want and [r["id"] for r in got] == want
    step = every[0]["step_id"] or next(r["step_id"] for r in every if r["step_id"])
    code, out, _ = run(capsys, "ingestion", "show", str(job_id), "--json")
    ordinal = next(
        s["step"]["ordinal"] for s in json.loads(out)["steps"] if s["step"]["id"] == step
    )
    code, out, err = run(capsys, "ingestion", "logs", str(job_id), "--step", str(ordinal), "--json")
    assert code == 0, err
    assert {r["step_id"] for r in json.loads(out)} == {step}
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--level", "warning", "--json")
    assert [r["id"] for r in json.loads(out)] == [
        r["id"] for r in every if r["level"] in {"warning", "error"}
    ]
    code, out, err = run(capsys, "ingestion", "logs", str(job_id), "--step", "100000")
    assert code != 0 and f"step 100000 of job {job_id} not found" in err and not out


SPOILED_DAY = ["--range-start-day", "2026-03-20", "--range-end-day", "2026-03-20"]


def test_skip_bad_records_on_plan_run_and_resume(demo_home: Path, capsys) -> None:
    spoil_chat(demo_home, "2026-03-20")
    chat = ["--mode", "backfill_range", *SPOILED_DAY, "--source", "chat"]
    code, out, _ = run(capsys, "ingestion", "plan", *chat, "--skip-bad-records", "--json")
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["params"]["skip_bad_records"] is True
    code, out, err = run(capsys, "ingestion", "run", "--plan-id", str(plan["id"]), *INLINE)
    assert code == 0, out + err
    assert "succeeded" in out
    # strict by default: the same cells, forced, fail on the bad record; resume skips it
    code, out, _ = run(capsys, "ingestion", "run", *chat, "--force", *INLINE, "--json")
    job = json.loads(out)["job"]["job"]
    assert code == 1 and job["status"] == "failed"
    assert "export chat 2026-03-20: " in job["error"] and "--skip" not in job["error"]  # facts
    # the face words the advice, from what check_resume finds: the record is still bad
    code, out, _ = run(capsys, "ingestion", "show", str(job["id"]))
    assert f"next     softcopy ingestion resume {job['id']} --skip-bad-records" in out
    code, out, err = run(capsys, "ingestion", "resume", str(job["id"]), "--skip-bad-records")
    assert code == 0, out + err
    assert "succeeded" in out and "skip" not in out.splitlines()[-1]


def test_a_home_without_sources_says_which_home_and_what_to_do(home: Path, capsys) -> None:
    for argv in (
        ["ingestion", "coverage"],
        ["ingestion", "plan", "--mode", "catch_up_recent"],
        ["ingestion", "run", "--mode", "catch_up_recent"],
        ["ingestion", "reconcile"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and not out, argv
        assert err.splitlines() == [err.strip()] and "Traceback" not in err
        assert f"home {home.resolve()} (from SOFTCOPY_HOME) has no sources" in err
        assert "softcopy source add" in err and "softcopy demo" in err
    code, out, _ = run(capsys, "ingestion", "jobs")
    assert code == 0 and out.startswith("no jobs yet")


def test_the_default_home_is_named(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("SOFTCOPY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    code, out, err = run(capsys, "ingestion", "coverage")
    assert code == 2 and not out
    assert f"home {(tmp_path / 'data' / 'softcopy').resolve()} (the default;" in err


def test_demo_suggests_ingestion_run_and_serve(home: Path, capsys) -> None:
    code, out, _ = run(capsys, "demo", "--days", "7", "--home", str(home))
    lines = out.splitlines()
    assert code == 0 and "softcopy ingest " not in out
    suggested = next(line for line in lines if line.startswith("next: ")).split()[1:]
    assert suggested[:3] == ["softcopy", "ingestion", "run"]
    assert any(line.startswith("then: softcopy serve --home") for line in lines)
    code, out, err = run(capsys, *suggested[1:], "--executor", "inline")
    assert code == 0, err
    assert "succeeded" in out


def test_version_and_the_executor_is_a_choice(home: Path, capsys) -> None:
    from softcopy import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"softcopy {__version__}\n"
    command = typer.main.get_command(ingestion_app).commands["run"]  # type: ignore[attr-defined]
    executor = next(p for p in command.params if p.name == "executor")
    # the choice, as --help shows it: every registered executor (a plugin's too)
    assert executor.metavar.startswith("[") and executor.metavar.endswith("]")
    assert {"inline", "notebook", "papermill"} <= set(executor.metavar[1:-1].split("|"))
    code, out, _ = run(capsys, "ingestion", "run", "--help")
    assert code == 0 and "--executor" in out and "--engine" not in out  # the old name is hidden


def test_the_old_engine_flag_still_runs_with_a_one_line_notice(demo_home: Path, capsys) -> None:
    code, out, err = run(
        capsys,
        "ingestion",
        "run",
        "--mode",
        "catch_up_recent",
        "--engine",
        "inline",
        "--home",
        str(demo_home),
        "--json",
    )
    assert code == 0, err
    assert err == "warning: --engine is deprecated; use --executor\n"
    assert json.loads(out)["job"]["job"]["executor"] == "inline"
    code, out, err = run(
        capsys,
        "ingestion",
        "run",
        "--mode",
        "catch_up_recent",
        "--engine",
        "inline",
        "--executor",
        "notebook",
        "--home",
        str(demo_home),
    )
    assert code == 2 and not out
    assert err.splitlines()[-1] == "error: give --executor or --engine (its old name), not both"


def test_plurals_and_stages_in_pipeline_order(demo_home: Path, capsys) -> None:
    day = ["--range-start-day", "2026-03-20", "--range-end-day", "2026-03-20"]
    code, out, _ = run(
        capsys, "ingestion", "plan", "--mode", "backfill_range", *day, "--source", "chat"
    )
    assert code == 0 and ": 3 cells in 3 steps" in out
    stages = [line.split("│")[2].strip() for line in out.splitlines() if "│ chat" in line]
    assert stages == ["export", "embed", "publish"]
    code, out, _ = run(
        capsys,
        "ingestion",
        "plan",
        "--mode",
        "backfill_range",
        *day,
        "--source",
        "chat",
        "--stage",
        "export",
    )
    assert code == 0 and ": 1 cell in 1 step" in out


def test_worker_takes_a_positional_job_id(ctx, capsys) -> None:
    from softcopy.ingestion import service
    from softcopy.ingestion.states import PlanMode

    options = service.PlanOptions(
        mode=PlanMode.backfill_range,
        sources=["chat"],
        range_start_day=DEMO_DAY,
        range_end_day=DEMO_DAY,
    )
    queued = service.enqueue(ctx, options=options, executor="inline")
    assert queued.job is not None
    job_id = str(queued.job.job.id)
    # queued at the demo's date: no worker took it for longer than the lease, so --follow
    # stops (instead of waiting forever) and says how to start one
    code, out, err = run(capsys, "ingestion", "logs", job_id, "--follow")
    assert code == 0 and "job.created" in out
    assert err.startswith(f"job {job_id} is queued, unclaimed for ")
    assert err.endswith(f"no worker took it; start one with `softcopy ingestion worker {job_id}`\n")
    code, _, err = run(capsys, "ingestion", "worker", job_id, "--job-id", job_id)
    assert code == 2 and "give the job id once" in err
    code, out, _ = run(capsys, "ingestion", "worker", job_id)
    assert code == 0 and out == f"ran jobs: {job_id}\n"
