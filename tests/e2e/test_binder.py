"""binder/postBuild, run as mybinder would (HOME its own folder), in a fresh virtualenv
that sees this environment's packages so nothing downloads: softcopy installs, the demo
home is built and partly backfilled, and binder/start points kernels at it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from softcopy.ingestion import service
from softcopy.ingestion.states import CellState, Stage

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"


def offline_venv(path: Path) -> Path:
    """A virtualenv whose site-packages also reads ours (a .pth line), so pip finds every
    dependency installed (pip itself too) and builds softcopy offline with our hatchling."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
        check=True,
    )
    site = next(path.glob("lib/python*/site-packages"))
    (site / "_softcopy_test_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path / "bin"


def test_postbuild_installs_softcopy_and_builds_a_published_demo_home(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="binder test skipped: hatchling is not installed")
    home = tmp_path / "jovyan"
    home.mkdir()
    bin_dir = offline_venv(tmp_path / "venv")
    env = {
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(bin_dir.parent),
        "PIP_NO_INDEX": "1",  # nothing downloads
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted switch: build with our hatchling
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "LANG": "C.UTF-8",
        "SOFTCOPY_DEMO_DAYS": "40",  # mybinder builds 120 days; 10 backfilled days prove it
    }
    built = subprocess.run(
        [str(BINDER / "postBuild")], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert (bin_dir / "softcopy").exists()  # installed into the new environment

    demo = home / "softcopy-demo"
    assert (demo / "softcopy.toml").is_file() and (demo / "index.db").is_file()
    ctx = service.open_context(demo)
    today = datetime.now(UTC).date()
    cells = service.coverage(ctx).cells
    published = [c for c in cells if c.stage is Stage.publish and c.state is CellState.current]
    assert published and sum(c.items for c in published) > 0
    assert max(c.day for c in published) <= today - timedelta(days=30)
    assert any(c.state is CellState.missing for c in cells)  # left for the visitor

    started = subprocess.run(
        [str(BINDER / "start"), "sh", "-c", 'echo "$SOFTCOPY_HOME"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.strip() == str(demo)


def test_binder_pins_python_and_the_dashboard_stack() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    wanted = {line.split(">=")[0] for line in (BINDER / "requirements.txt").read_text().split()}
    assert {"voila", "ipywidgets"} <= wanted
    for script in ("postBuild", "start"):
        assert os.access(BINDER / script, os.X_OK)
