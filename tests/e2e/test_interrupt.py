"""Ctrl-C in a foreground `softcopy ingestion run`: a real SIGINT to a real process, after
it has written a checkpoint; the job is left cancelled and resumes to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.demo import build_demo
from softcopy.ingestion.models import Checkpoint, IngestionJob
from softcopy.ingestion.states import JobStatus
from tests.conftest import DEMO_TODAY


@pytest.mark.parametrize("executor", ["inline", "notebook"])
def test_sigint_cancels_the_job_in_one_line_and_it_resumes(home: Path, executor: str) -> None:
    """The notebook executor too: its kernel's abandoned cell must not print a traceback."""
    build_demo(home, days=40, today=DEMO_TODAY)
    engine = get_engine(load_settings(home).database_url)
    argv = [sys.executable, "-m", "softcopy", "ingestion"]
    run = subprocess.Popen(
        [
            *argv,
            "run",
            "--mode",
            "backfill_range",
            "--range-start-day",
            "2026-02-20",
            "--range-end-day",
            str(DEMO_TODAY),
            "--executor",
            executor,
            "--chunk-days",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"SOFTCOPY_HOME": str(home)},
    )
    deadline = time.monotonic() + 150  # the first kernel starts slowly under load
    while True:  # at least one checkpoint written, and the job not done
        with Session(engine) as session:
            if session.scalar(select(func.count()).select_from(Checkpoint)):
                break
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=90)
    with Session(engine) as session:
        job = session.scalars(select(IngestionJob)).one()
        done = session.scalar(select(func.count()).select_from(Checkpoint))
    assert run.returncode == 130, out + err
    assert "Traceback" not in err and "Error" not in err
    assert err.strip() == (
        f"job {job.id} cancelled at {done}/{job.cells_total} cells — "
        f"resume with: softcopy ingestion resume {job.id}"
    )
    assert job.status is JobStatus.cancelled and 0 < done < job.cells_total
    if executor != "inline":
        return  # resuming is the same for every executor, and slower in a kernel
    resumed = subprocess.run(
        [*argv, "resume", str(job.id)],
        capture_output=True,
        text=True,
        env=os.environ | {"SOFTCOPY_HOME": str(home)},
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{job.cells_total}/{job.cells_total} cells (100%)" in resumed.stdout
