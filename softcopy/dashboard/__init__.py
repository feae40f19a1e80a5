"""The Voilà dashboard's widgets: each panel is an ipywidgets container with traitlets and
`refresh()`, and calls `softcopy.ingestion.service` only (no SQL, no orchestration).

Names are imported on first use: `from softcopy.dashboard import Dashboard` costs ipywidgets
alone, so the dashboard notebook can show its frame before the service's stack is imported."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softcopy.dashboard.app import Dashboard
    from softcopy.dashboard.coverage import CoveragePanel
    from softcopy.dashboard.jobs import JobsPanel
    from softcopy.dashboard.plan import PlanPanel
    from softcopy.dashboard.reconcile import ReconcilePanel

_HOMES = {
    "CoveragePanel": "coverage",
    "Dashboard": "app",
    "JobsPanel": "jobs",
    "PlanPanel": "plan",
    "ReconcilePanel": "reconcile",
}
__all__ = ["CoveragePanel", "Dashboard", "JobsPanel", "PlanPanel", "ReconcilePanel"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"softcopy.dashboard.{_HOMES[name]}"), name)
