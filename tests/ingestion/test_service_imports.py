"""What the service costs a new process before its first use: importing the façade loads
none of the control plane, and reading a coverage snapshot (the dashboard's first paint)
loads neither numpy, psutil, alembic, the runtime nor the other database's dialect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from softcopy.ingestion import service

# what only running, verifying or searching needs
HEAVY = [
    "numpy",
    "psutil",
    "alembic",
    "softcopy.ingestion.runtime",
    "softcopy.ingestion.executors",
    "softcopy.memory.pipeline",
    "softcopy.memory.embedders",
]

PROBE = """
import json, sys
from softcopy.ingestion import service
imported = sorted(m for m in sys.modules if m.startswith("softcopy.") or m in {heavy!r})
ctx = service.open_context(sys.argv[1])
report = service.latest_coverage(ctx)
service.latest_reconciliation(ctx)
drawn = sorted(m for m in {heavy!r} if m in sys.modules)
postgresql = "sqlalchemy.dialects.postgresql" in sys.modules
print(json.dumps([imported, drawn, postgresql, len(report.cells) if report else 0]))
"""


def test_reading_a_snapshot_loads_none_of_the_control_plane_s_runtime(
    ctx: service.Context, demo_home: Path
) -> None:
    service.coverage(ctx)  # the snapshot the dashboard's first paint shows
    shown = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), str(demo_home)],
        capture_output=True,
        text=True,
        check=True,
    )
    imported, drawn, postgresql, cells = json.loads(shown.stdout)
    assert imported == ["softcopy.ingestion", "softcopy.ingestion.service"]  # nothing under it
    assert cells > 0
    assert drawn == []
    assert postgresql == (ctx.engine.dialect.name == "postgresql")


def test_every_public_name_resolves_to_its_module() -> None:
    for name in service.__all__:
        value = getattr(service, name)
        module = service._MODULE_OF[name]
        assert getattr(sys.modules[module], name) is value
    assert set(dir(service)) >= set(service.__all__)
