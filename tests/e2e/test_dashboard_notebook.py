"""The dashboard notebook runs top to bottom in a real kernel (nbval-lax) on a demo home,
and is saved without outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
