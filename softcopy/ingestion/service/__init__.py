"""The public façade of the ingestion control plane: every face (CLI, HTTP API, dashboard,
notebooks) calls these functions, and nothing else orchestrates.

Functions are keyword-only, take a `Context`, commit one transaction per use case, and
return models or plain values; they never print and know nothing of HTTP or exit codes.

The use cases live in submodules named for what they hold (plans, runs, reads); their
dataclasses in views; the context in context. Import from here.

Importing this package imports none of them: each name is looked up in its module on first
use (PEP 562 `__getattr__`), so a face that reads a coverage snapshot (the dashboard's
first paint) does not load the runtime, the executors, numpy or psutil, which only running
and reading jobs need."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names of _WHERE, re-exported (`X as X`) for type checkers
    from softcopy.ingestion.runtime import Progress as Progress
    from softcopy.ingestion.service.context import Context as Context
    from softcopy.ingestion.service.context import open_context as open_context
    from softcopy.ingestion.service.plans import coverage as coverage
    from softcopy.ingestion.service.plans import get_plan as get_plan
    from softcopy.ingestion.service.plans import get_reconciliation as get_reconciliation
    from softcopy.ingestion.service.plans import latest_coverage as latest_coverage
    from softcopy.ingestion.service.plans import list_plans as list_plans
    from softcopy.ingestion.service.plans import plan as plan
    from softcopy.ingestion.service.plans import preview_plan as preview_plan
    from softcopy.ingestion.service.plans import reconcile as reconcile
    from softcopy.ingestion.service.reads import follow_logs as follow_logs
    from softcopy.ingestion.service.reads import job_logs as job_logs
    from softcopy.ingestion.service.reads import job_summaries as job_summaries
    from softcopy.ingestion.service.reads import latest_reconciliation as latest_reconciliation
    from softcopy.ingestion.service.reads import list_jobs as list_jobs
    from softcopy.ingestion.service.reads import listed_jobs as listed_jobs
    from softcopy.ingestion.service.reads import live_cells as live_cells
    from softcopy.ingestion.service.reads import log_tail as log_tail
    from softcopy.ingestion.service.reads import show_job as show_job
    from softcopy.ingestion.service.reads import step_checkpoints as step_checkpoints
    from softcopy.ingestion.service.reads import step_notebook as step_notebook
    from softcopy.ingestion.service.reads import step_notebook_html as step_notebook_html
    from softcopy.ingestion.service.runs import cancel as cancel
    from softcopy.ingestion.service.runs import check_resume as check_resume
    from softcopy.ingestion.service.runs import enqueue as enqueue
    from softcopy.ingestion.service.runs import held_cells as held_cells
    from softcopy.ingestion.service.runs import resume as resume
    from softcopy.ingestion.service.runs import run as run
    from softcopy.ingestion.service.runs import spawn_worker as spawn_worker
    from softcopy.ingestion.service.runs import take_unclaimed_cells as take_unclaimed_cells
    from softcopy.ingestion.service.runs import verify as verify
    from softcopy.ingestion.service.runs import work as work
    from softcopy.ingestion.service.views import CoverageReport as CoverageReport
    from softcopy.ingestion.service.views import JobView as JobView
    from softcopy.ingestion.service.views import LiveCell as LiveCell
    from softcopy.ingestion.service.views import LogPage as LogPage
    from softcopy.ingestion.service.views import PlanOptions as PlanOptions
    from softcopy.ingestion.service.views import PlanView as PlanView
    from softcopy.ingestion.service.views import ReconcileReport as ReconcileReport
    from softcopy.ingestion.service.views import ResumeCheck as ResumeCheck
    from softcopy.ingestion.service.views import RunOutcome as RunOutcome
    from softcopy.ingestion.service.views import StepView as StepView
    from softcopy.ingestion.service.views import TakenOver as TakenOver

_WHERE = {
    "softcopy.ingestion.runtime": ["Progress"],
    "softcopy.ingestion.service.context": ["Context", "open_context"],
    "softcopy.ingestion.service.plans": [
        "coverage",
        "get_plan",
        "get_reconciliation",
        "latest_coverage",
        "list_plans",
        "plan",
        "preview_plan",
        "reconcile",
    ],
    "softcopy.ingestion.service.reads": [
        "follow_logs",
        "job_logs",
        "job_summaries",
        "latest_reconciliation",
        "list_jobs",
        "listed_jobs",
        "live_cells",
        "log_tail",
        "show_job",
        "step_checkpoints",
        "step_notebook",
        "step_notebook_html",
    ],
    "softcopy.ingestion.service.runs": [
        "cancel",
        "check_resume",
        "enqueue",
        "held_cells",
        "resume",
        "run",
        "spawn_worker",
        "take_unclaimed_cells",
        "verify",
        "work",
    ],
    "softcopy.ingestion.service.views": [
        "CoverageReport",
        "JobView",
        "LiveCell",
        "LogPage",
        "PlanOptions",
        "PlanView",
        "ReconcileReport",
        "ResumeCheck",
        "RunOutcome",
        "StepView",
        "TakenOver",
    ],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept here after."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
