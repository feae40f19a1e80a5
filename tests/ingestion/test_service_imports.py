"""What the service costs a new process before its first use: importing the façade loads
none of the control plane, and reading a coverage snapshot (the dashboard's first paint)
loads neither numpy, psutil, alembic, the runtime nor the other database's dialect."""

from __future__ import annotations

import ast
import importlib
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
    # each name is kept in the package after its first use (the next is a plain attribute)
    assert set(service.__all__) <= set(vars(service))


def test_the_type_checking_imports_are_the_lazy_names() -> None:
    """What type checkers see (the imports under `if TYPE_CHECKING:`) is what `__getattr__`
    serves (`_WHERE`), and each module of `_WHERE` defines its names."""
    tree = ast.parse(Path(service.__file__ or "").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    imported: dict[str, list[str]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        imported.setdefault(node.module, []).extend(
            alias.asname or alias.name for alias in node.names
        )
    assert imported == service._WHERE
    names = [name for names in service._WHERE.values() for name in names]
    assert len(names) == len(set(names))  # no name served from two modules
    for module, names in service._WHERE.items():
        defined = vars(importlib.import_module(module))
        assert [name for name in names if name not in defined] == [], module
