"""The notebooks, run for real: every notebook in notebooks/ (and dashboards/) under
`pytest --nbval-lax` on a demo home, and the reconcile report under papermill the way cron
runs it — succeeding when nothing drifted, failing (with its output written) when a
published note was edited. Real kernels, a real database, no network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest

from softcopy.demo import build_demo
from softcopy.ingestion import service
from softcopy.ingestion.states import FindingKind, JobStatus, PlanMode

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_FOLDERS = [ROOT / "notebooks", ROOT / "dashboards"]
RECONCILE = ROOT / "notebooks" / "reconcile.ipynb"


@pytest.fixture
def live_home(home: Path) -> Path:
    """A demo home whose last day is today: the tour works on the days up to today."""
    build_demo(home, days=30)
    return home


def run(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A subprocess of this venv's python, with the home's SOFTCOPY_* environment."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ) if env is None else env,
        check=False,
    )


def test_every_notebook_runs_under_nbval(live_home: Path) -> None:
    notebooks = sorted(
        str(path.relative_to(ROOT)) for f in NOTEBOOK_FOLDERS for path in f.glob("*.ipynb")
    )
    assert "notebooks/reconcile.ipynb" in notebooks and "notebooks/tour.ipynb" in notebooks
    result = run(
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-kernel-name=python3",  # the venv's own kernel: argv "python" is this python
        "-p",
        "no:cacheprovider",
        "-v",
        *notebooks,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for notebook in notebooks:  # nbval names a cell "notebooks/tour::ipynb::Cell 3"
        ran = re.search(
            rf"{re.escape(notebook[: -len('.ipynb')])}\S*::Cell \d+ PASSED", result.stdout
        )
        assert ran, f"{notebook} did not run"


def papermill(
    output: Path, *params: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    pairs = [arg for i in range(0, len(params), 2) for arg in ("-p", *params[i : i + 2])]
    return run("-m", "papermill", str(RECONCILE), str(output), *pairs, timeout=300, env=env)


def printed(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "".join(
        o["text"]
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
    )


def error_outputs(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [
        f"{o['ename']}: {o['evalue']}"
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


# The database only changes where the report reads from: one leg is enough here.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_scheduled_reconcile_fails_when_a_source_drifted(live_home: Path, tmp_path: Path) -> None:
    ctx = service.open_context(live_home)
    today = ctx.today()
    published = service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range,
            range_start_day=today - timedelta(days=29),
            range_end_day=today,
        ),
    )
    assert published.job is not None and published.job.job.status is JobStatus.succeeded
    runs = tmp_path / "runs"
    runs.mkdir()

    bare = {k: v for k, v in os.environ.items() if not k.startswith("SOFTCOPY_")}
    clean = papermill(  # as cron runs it: parameters only, no SOFTCOPY_* environment
        runs / "reconcile-clean.ipynb",
        *("home", str(live_home), "database_url", ctx.settings.database_url),
        *("fail_on_drift", "True"),
        env=bare,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert error_outputs(runs / "reconcile-clean.ipynb") == []
    assert f"home:    {live_home.resolve()}" in printed(runs / "reconcile-clean.ipynb")
    assert "no drift" in printed(runs / "reconcile-clean.ipynb")

    note = sorted((live_home / "sources" / "notes" / "Daily").rglob("*.md"))[0]
    note.write_text(note.read_text() + "- an edit made after publishing\n")
    drifted = papermill(runs / "reconcile-drift.ipynb", "fail_on_drift", "True", "repair", "True")

    assert drifted.returncode != 0  # what a scheduler sees
    assert "DriftFound" in drifted.stderr
    errors = error_outputs(runs / "reconcile-drift.ipynb")  # written all the same
    assert len(errors) == 1 and errors[0].startswith("DriftFound: reconciliation ")
    assert f"notes {note.stem}" in errors[0]
    reconciliation_id = int(errors[0].split()[2])
    persisted = service.get_reconciliation(ctx, reconciliation_id=reconciliation_id)
    assert persisted.run.drift
    assert [f.kind for f in persisted.findings] == [FindingKind.source_drift]
    assert persisted.repair_plan is not None and persisted.repair_plan.cells == 3
