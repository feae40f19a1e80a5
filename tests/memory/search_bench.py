"""bench/search_quality.py (its labelled queries, ingestion and scoring) as a module, for the
tests that hold search to it (test_search_quality, test_pg_index)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench/search_quality.py"


@functools.cache
def load() -> ModuleType:
    """The bench as the module `search_quality`, executed once per process."""
    spec = importlib.util.spec_from_file_location("search_quality", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_quality"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
