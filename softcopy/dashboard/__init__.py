"""The Voilà dashboard's widgets: each panel is an ipywidgets container with traitlets and
`refresh()`, and calls `softcopy.ingestion.service` only (no SQL, no orchestration)."""

from softcopy.dashboard.app import Dashboard
from softcopy.dashboard.coverage import CoveragePanel
from softcopy.dashboard.jobs import JobsPanel
from softcopy.dashboard.plan import PlanPanel
from softcopy.dashboard.reconcile import ReconcilePanel

__all__ = ["CoveragePanel", "Dashboard", "JobsPanel", "PlanPanel", "ReconcilePanel"]
