"""What the dashboard's kernel imports before its first paint: the coverage tab drawn from
the newest snapshot, and the Plan tab built just after it, load no stage code, numpy,
psutil, alembic or the runtime; those come when a job runs or a tab that needs them opens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from softcopy.ingestion import service

HEAVY = [
    "numpy",
    "psutil",
    "alembic",
    "softcopy.ingestion.runtime",
    "softcopy.memory.pipeline",
    "softcopy.memory.embedders",
    "softcopy.memory.index",
]

PROBE = """
import json, os, sys
from softcopy.dashboard import Dashboard
made = Dashboard.launch(sys.argv[1], poll_interval=0)
made.opened.wait(120)
print(json.dumps([made.error, made.built(), sorted(m for m in {heavy!r} if m in sys.modules)]))
os._exit(0)  # the panels' threads are daemons; nothing to flush
"""


def test_the_first_paint_and_the_plan_tab_import_no_stage_code(
    ctx: service.Context, demo_home: Path
) -> None:
    service.coverage(ctx)  # the snapshot the first paint shows
    shown = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), str(demo_home)],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    error, built, heavy = json.loads(shown.stdout.splitlines()[-1])
    assert error == ""
    assert built == ["Coverage", "Plan"]
    assert heavy == []
