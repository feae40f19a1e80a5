"""`softcopy ingestion …`: the commands people type, their output and exit codes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from softcopy.cli.main import main

RANGE = ["--range-start-day", "2026-03-02", "--range-end-day", "2026-03-31"]
INLINE = ["--executor", "inline"]  # these tests are about the CLI; executors have their own


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_run_show_verify_logs(demo_home: Path, capsys) -> None:
    code, out, _ = run(capsys, "ingestion", "coverage", "--json")
    assert code == 0 and {c["state"] for c in json.loads(out)["cells"]} == {"missing"}
    code, out, _ = run(capsys, "ingestion", "plan", "--mode", "backfill_range", *RANGE, "--json")
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["cells"] > 0
    code, out, err = run(
        capsys, "ingestion", "run", "--plan-id", str(plan["id"]), *INLINE, "--json"
    )
    assert code == 0, err
    job = json.loads(out)["job"]["job"]
    assert job["status"] == "succeeded" and job["cells_done"] == plan["cells"]
    code, out, _ = run(capsys, "ingestion", "show", str(job["id"]))
    assert code == 0 and "succeeded" in out
    code, out, _ = run(capsys, "ingestion", "verify", "--job-id", str(job["id"]), "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(capsys, "ingestion", "logs", str(job["id"]), "--level", "info")
    assert code == 0 and "checkpoint" in out and "succeeded" in out
    code, out, _ = run(capsys, "ingestion", "jobs", "--status", "succeeded", "--json")
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    code, out, _ = run(capsys, "ingestion", "reconcile", "--json")
    assert code == 0 and json.loads(out)["run"]["findings_count"] == 0


def test_detached_run_returns_at_once_and_a_worker_finishes_it(demo_home: Path, capsys) -> None:
    code, out, err = run(
        capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, "--detach", "--json"
    )
    assert code == 0, err
    outcome = json.loads(out)
    job_id = outcome["job"]["job"]["id"]
    assert outcome["job"]["job"]["status"] in {"queued", "running"} and outcome["worker_pid"]
    assert os.getsid(outcome["worker_pid"]) == outcome["worker_pid"]  # its own session
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--follow", "--json")
    followed = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and followed[-1]["event"] == "job.transition"
    assert followed[-1]["fields"]["after"] in {"succeeded", "failed"}
    code, out, _ = run(capsys, "ingestion", "logs", str(job_id), "--limit", "5000", "--json")
    assert [r["id"] for r in json.loads(out)] == [r["id"] for r in followed]
    deadline = time.monotonic() + 60
    while True:
        code, out, _ = run(capsys, "ingestion", "show", str(job_id), "--json")
        if json.loads(out)["job"]["status"] == "succeeded":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # the worker is the service's own process (no CLI command line), and says what it ran
    assert psutil.Process(outcome["worker_pid"]).wait(timeout=60) == 0
    log = (demo_home / "logs" / f"worker-job-{job_id}.log").read_text()
    assert log.splitlines()[-1] == f"worker for job {job_id}: ran jobs: {job_id}"


def test_drift_makes_reconcile_exit_1_and_a_repair_plan(demo_home: Path, capsys) -> None:
    run(capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, *INLINE)
    note = sorted((demo_home / "sources" / "notes" / "Daily").rglob("*.md"))[-1]
    note.write_text(note.read_text() + "\nchanged\n")
    code, out, _ = run(capsys, "ingestion", "reconcile", "--repair")
    assert code == 1 and "source_drift" in out and "softcopy ingestion run --plan-id" in out
    plan_id = out.rsplit("--plan-id", 1)[1].split()[0]
    code, out, err = run(capsys, "ingestion", "run", "--plan-id", plan_id, *INLINE, "--json")
    assert code == 0, err
    code, _, _ = run(capsys, "ingestion", "reconcile")
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingestion", "show", "42"], "job 42 not found"),
        (["ingestion", "resume", "42"], "job 42 not found"),
        (["ingestion", "cancel", "42"], "job 42 not found"),
        (["ingestion", "verify", "--job-id", "42"], "job 42 not found"),
        (["ingestion", "logs", "42"], "job 42 not found"),
        (["ingestion", "run", "--plan-id", "42"], "plan 42 not found"),
        (
            ["ingestion", "plan", "--mode", "repair", "--reconciliation-id", "9"],
            "reconciliation 9 not found",
        ),
        (
            [
                "ingestion",
                "plan",
                "--mode",
                "backfill_range",
                "--range-start-day",
                "2026-02-30",
                "--range-end-day",
                "2026-03-01",
            ],
            "bad date '2026-02-30'",
        ),
        (
            [
                "ingestion",
                "plan",
                "--mode",
                "backfill_range",
                "--range-start-day",
                "2026-03-10",
                "--range-end-day",
                "2026-03-01",
            ],
            "is before --range-start-day",
        ),
        (["ingestion", "plan", "--mode", "backfill_range"], "needs --range-start-day"),
        (["ingestion", "coverage", "--source", "fax"], "unknown source 'fax'"),
        (
            ["ingestion", "run", "--mode", "backfill_range", *RANGE, "--executor", "warp"],
            "unknown executor 'warp'; executors: ",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(
    demo_home: Path, capsys, argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_resume_of_a_succeeded_job_is_refused(demo_home: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "ingestion", "run", "--mode", "backfill_range", *RANGE, *INLINE, "--json"
    )
    job_id = json.loads(out)["job"]["job"]["id"]
    code, _, err = run(capsys, "ingestion", "resume", str(job_id))
    assert code == 2 and "already finished" in err
    code, _, err = run(capsys, "ingestion", "cancel", str(job_id))
    assert code == 2 and "only queued or running jobs can be cancelled" in err


def test_run_needs_a_plan_or_a_mode(demo_home: Path, capsys) -> None:
    code, _, err = run(capsys, "ingestion", "run")
    assert code == 2 and "give either --plan-id or --mode" in err
