"""Fast checks of the notebook executors' parts that need no kernel: the shipped notebooks, lazy
registration, progress counting, and how a failed cell becomes the step's error."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import as_file
from pathlib import Path

import nbformat
import pytest

from softcopy.errors import OperationFailed, UserError
from softcopy.memory.stages import Stage
from softcopy.notebooks import step_notebook

PARAMETERS = {"job_id", "step_id", "epoch", "home", "database_url"}


@pytest.mark.parametrize("stage", [str(stage) for stage in Stage])
def test_each_stage_ships_a_step_notebook_in_the_package(stage: str) -> None:
    with as_file(step_notebook(stage)) as path:
        nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "softcopy/notebooks/steps" in path.as_posix()
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assigned = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
    assert assigned == PARAMETERS
    run = next(c for c in nb.cells if "run-step" in c.metadata.get("tags", []))
    assert "run_step_days(StepTicket(settings, job_id, step_id, epoch)" in run.source
    assert any("summary" in c.metadata.get("tags", []) for c in nb.cells)
    assert nb.metadata.kernelspec.name == "python3"


def test_an_unknown_stage_has_no_notebook() -> None:
    with pytest.raises(UserError, match="no step notebook"):
        step_notebook("compress")


def test_starting_the_cli_and_choosing_an_executor_import_no_notebook_machinery() -> None:
    code = (
        "import sys, softcopy.cli.main\n"
        "from softcopy.ingestion import executors\n"
        "executors.get_executor('inline')\n"
        "assert {'papermill', 'notebook'} <= set(executors.executor_names())\n"
        "slow = {'papermill', 'jupyter_client', 'nbclient', 'zmq'} & set(sys.modules)\n"
        "assert not slow, slow\n"
        "chosen = executors.get_executor('notebook')  # naming one must not start a kernel\n"
        "assert chosen.kernel is None and 'jupyter_client' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_day_counter_calls_on_day_once_per_day_line_however_the_stream_is_cut() -> None:
    from softcopy.ingestion.notebook_executors import DayCounter

    days: list[int] = []
    counter = DayCounter(lambda: days.append(1))
    for chunk in ["✓ day 1 done (0.10 s)\n✓ da", "y 2 done (0.", "20 s)\nnoise ✓ day 9 done\n"]:
        counter.write(chunk)
    counter.write("✓ day 3 done (0.01 s)")  # no newline yet: not counted
    assert len(days) == 2
    counter.write("\n")
    assert len(days) == 3
    DayCounter(None).write("✓ day 1 done\n")  # no progress callback: nothing to call


def test_a_failed_cell_becomes_an_operation_failure_naming_cell_and_exception() -> None:
    from softcopy.ingestion.notebook_executors import NotebookStepFailed, run_notebook_path
    from softcopy.ingestion.runtime import StepFailed

    path = run_notebook_path(Path("/h"), 4, 17, "embed")
    assert path.as_posix() == "/h/runs/4/17-embed.ipynb"
    exc = NotebookStepFailed(
        17, cell_index=3, exec_count=3, ename="StageFailed", evalue="boom", notebook=str(path)
    )
    assert isinstance(exc, StepFailed) and isinstance(exc, OperationFailed)
    assert (exc.cell_index, exc.ename, exc.evalue) == (3, "StageFailed", "boom")
    assert exc.reason == f"cell 3 (In [3]) raised StageFailed: boom — see {path}"


def test_a_dead_kernel_marks_the_cell_that_was_running() -> None:
    from softcopy.ingestion.warm_kernel import mark_dead_kernel

    nb = nbformat.v4.new_notebook()
    nb.metadata.papermill = {"exception": None}
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2")]
    nb.cells.append(nbformat.v4.new_code_cell("c = 3"))
    for i, cell in enumerate(nb.cells):
        started = "2026-01-01T00:00:00" if i < 2 else None
        cell.metadata.papermill = {"start_time": started, "status": "completed", "exception": None}
    assert mark_dead_kernel(nb) == 1
    cell = nb.cells[1]
    assert cell.metadata.papermill["status"] == "failed" and cell.metadata.papermill["exception"]
    assert cell.outputs[-1]["ename"] == "DeadKernelError"
    assert nb.metadata.papermill["exception"] is True
    assert mark_dead_kernel(nbformat.v4.new_notebook()) is None


def test_a_step_notebook_never_holds_a_database_password(home: Path, monkeypatch) -> None:
    from softcopy.notebooks.step import hide_password, step_settings

    secret = "postgresql+psycopg://ada:s3cret@db.local:5432/softcopy"
    shown = hide_password(secret)
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://ada:***@")
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", secret)  # what the kernel inherits
    assert step_settings(str(home), shown, job_id=1, step_id=2).database_url == secret
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", secret.replace("ada", "bob"))
    with pytest.raises(UserError, match="SOFTCOPY_DATABASE_URL"):
        step_settings(str(home), shown, job_id=1, step_id=2)
    plain = f"sqlite:///{home / 'other.db'}"  # no password: used as it is
    assert step_settings(str(home), plain, job_id=1, step_id=2).database_url == plain
    with pytest.raises(UserError, match="needs its parameters"):
        step_settings("", "", job_id=0, step_id=0)


def test_a_notebook_step_imports_papermill_without_the_iri_grammars() -> None:
    """The worker's first notebook step does not build rfc3987_syntax's grammars (~2.7 s);
    nbformat still validates notebooks, and still rejects an invalid one."""
    probe = (
        "import sys\n"
        "from softcopy.ingestion.notebook_executors import skip_iri_formats\n"
        "skip_iri_formats()\n"
        "import papermill, nbformat\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])\n"
        "nbformat.validate(nb)\n"
        "nb.cells[0]['outputs'] = 'not a list'\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('rejected')\n"
        "print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["rejected", "False"]
