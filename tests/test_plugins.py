"""A plugin installed beside softcopy (tests/plugin/) adds a source kind and an executor
through entry points, and both are used end to end from the CLI: the settings accept the
kind, a backfill runs on the executor, and verify proves what it published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

PLUGIN = Path(__file__).parent / "plugin"


def installed_plugin(site: Path) -> Path:
    """The plugin as an installed distribution: its package and a dist-info whose entry
    points are those of its pyproject.toml, in a folder put on a subprocess's PYTHONPATH
    (importlib.metadata finds it there; the venv is not touched)."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    shutil.copytree(PLUGIN / "softcopy_testplugin", site / "softcopy_testplugin")
    info = site / f"softcopy_testplugin-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
            for group, points in groups.items()
        )
    )
    return site


def softcopy(*argv: str, pythonpath: Path | None = None, **env: str) -> tuple[int, str, str]:
    full = dict(os.environ) | env  # SOFTCOPY_HOME and the database: the `home` fixture's
    full.pop("PYTHONPATH", None)
    if pythonpath is not None:
        full["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-m", "softcopy.cli.main", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_a_plugin_kind_and_executor_run_a_backfill_end_to_end(home: Path, tmp_path: Path) -> None:
    site = installed_plugin(tmp_path / "site")
    record = tmp_path / "steps-run"
    (home / "log.txt").write_text(
        "2024-03-01 seeds ordered\n2024-03-02 tomatoes planted\nnot a day\n"
        "2024-03-03 first watering\n"
    )
    add = ("source", "add", "garden", "--kind", "daylog", "--path", "log.txt")

    # without the plugin the kind is unknown: one line naming it and the known kinds
    code, out, err = softcopy(*add)
    assert code != 0 and "unknown source kind 'daylog'" in err + out and "notes" in err + out
    assert "Traceback" not in err and not (home / "softcopy.toml").exists()

    code, out, err = softcopy(*add, pythonpath=site)
    assert code == 0, err
    code, out, err = softcopy(
        *("ingestion", "run", "--mode", "backfill_range"),
        *("--range-start-day", "2024-03-01", "--range-end-day", "2024-03-03"),
        *("--executor", "recording", "--skip-bad-records", "--json"),
        pythonpath=site,
        SOFTCOPY_TESTPLUGIN_RECORD=str(record),
    )
    assert code == 0, err
    job = json.loads(out)["job"]["job"]
    assert job["status"] == "succeeded" and job["executor"] == "recording"
    assert job["cells_done"] == 9  # 3 days x (export, embed, publish)
    steps = record.read_text().splitlines()
    assert steps and {line.split(":")[0] for line in steps} == {str(job["id"])}

    code, out, err = softcopy("ingestion", "verify", str(job["id"]), "--json", pythonpath=site)
    assert code == 0 and json.loads(out)["ok"] is True, out + err
    code, out, err = softcopy("ingestion", "coverage", "--json", pythonpath=site)
    cells = json.loads(out)["cells"]
    days = {c["day"] for c in cells if c["source"] == "garden" and c["state"] == "current"}
    assert {"2024-03-01", "2024-03-02", "2024-03-03"} <= days, cells
