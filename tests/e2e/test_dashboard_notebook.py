"""The dashboard notebook runs top to bottom in a real kernel (nbval-lax) on a demo home,
and is saved without outputs; the dashboard it shows opens its home in a kernel thread and
draws the newest snapshot, with only the coverage and plan tabs built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from softcopy.ingestion import service

NOTEBOOK = Path(__file__).resolve().parents[2] / "dashboards" / "ingestion.ipynb"


def test_the_dashboard_notebook_is_thin_and_saved_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) <= 4
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_nbval_lax_runs_the_dashboard_notebook(demo_home: Path) -> None:
    """`demo_home` puts SOFTCOPY_HOME (and the test database) in the kernel's environment."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            str(NOTEBOOK),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=NOTEBOOK.parent.parent,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_the_dashboard_opens_its_home_in_a_kernel_thread(demo_home: Path) -> None:
    """The notebook's cells return at once (Voilà sends the page); the kernel thread opens
    the home and draws the newest snapshot. Coverage and Plan are built; another tab is
    built when chosen."""
    taken = service.coverage(service.open_context(demo_home))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "assert dashboard.opened.wait(120), 'the dashboard never opened its home'\n"
            "print(dashboard.ready, repr(dashboard.error), dashboard.built(),"
            " dashboard.coverage.snapshot_id, len(dashboard.coverage.cells))\n"
            "dashboard.show_tab('Jobs')\n"
            "print(dashboard.built(), sorted(dashboard.timings))"
        )
    )
    NotebookClient(notebook, timeout=240, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs).splitlines()
    assert printed == [
        f"True '' ['Coverage', 'Plan'] {taken.snapshot.id} {len(taken.cells)}",
        "['Coverage', 'Plan', 'Jobs'] ['coverage', 'home', 'imports']",
    ]
