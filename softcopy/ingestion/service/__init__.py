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

if TYPE_CHECKING:
    from softcopy.ingestion.runtime import Progress
    from softcopy.ingestion.service.context import Context, open_context
    from softcopy.ingestion.service.plans import (
        coverage,
        get_plan,
        get_reconciliation,
        latest_coverage,
        list_plans,
        plan,
        preview_plan,
        reconcile,
    )
    from softcopy.ingestion.service.reads import (
        follow_logs,
        job_logs,
        job_summaries,
        latest_reconciliation,
        list_jobs,
        live_cells,
        log_tail,
        show_job,
        step_checkpoints,
        step_notebook,
        step_notebook_html,
    )
    from softcopy.ingestion.service.runs import (
        cancel,
        check_resume,
        enqueue,
        held_cells,
        resume,
        run,
        spawn_worker,
        verify,
        work,
    )
    from softcopy.ingestion.service.views import (
        CoverageReport,
        JobView,
        LiveCell,
        LogPage,
        PlanOptions,
        PlanView,
        ReconcileReport,
        ResumeCheck,
        RunOutcome,
        StepView,
    )

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
    ],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


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


__all__ = [
    "Context",
    "CoverageReport",
    "JobView",
    "LiveCell",
    "LogPage",
    "PlanOptions",
    "PlanView",
    "Progress",
    "ReconcileReport",
    "ResumeCheck",
    "RunOutcome",
    "StepView",
    "cancel",
    "check_resume",
    "coverage",
    "enqueue",
    "follow_logs",
    "get_plan",
    "get_reconciliation",
    "held_cells",
    "job_logs",
    "job_summaries",
    "latest_coverage",
    "latest_reconciliation",
    "list_jobs",
    "list_plans",
    "live_cells",
    "log_tail",
    "open_context",
    "plan",
    "preview_plan",
    "reconcile",
    "resume",
    "run",
    "show_job",
    "spawn_worker",
    "step_checkpoints",
    "step_notebook",
    "step_notebook_html",
    "verify",
    "work",
]
