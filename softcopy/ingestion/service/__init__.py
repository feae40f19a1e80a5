"""The public façade of the ingestion control plane: every face (CLI, HTTP API, dashboard,
notebooks) calls these functions, and nothing else orchestrates.

Functions are keyword-only, take a `Context`, commit one transaction per use case, and
return models or plain values; they never print and know nothing of HTTP or exit codes.

The use cases live in submodules named for what they hold (plans, runs, reads); their
dataclasses in views; the context in context. Import from here.
"""

from softcopy.ingestion.service.context import Context, Progress, open_context
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
