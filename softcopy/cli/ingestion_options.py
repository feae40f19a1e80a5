"""The options `softcopy ingestion …` commands share, and the helpers that read them."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from softcopy import limits
from softcopy.cli.common import bounded, day_range
from softcopy.errors import NoSources, UserError
from softcopy.ingestion import service
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.states import PlanMode, Stage

Executor = Annotated[
    str | None,
    typer.Option(
        "--executor",
        metavar=f"[{'|'.join(executor_names())}]",  # a choice; the service names a wrong one
        help=f"Where each step runs.  [default: {DEFAULT_EXECUTOR}]",
    ),
]
# the old name of --executor, accepted for one release and not shown in --help
EngineAlias = Annotated[str | None, typer.Option("--engine", hidden=True)]


def chosen_executor(executor: str | None, engine: str | None, configured: str | None = None) -> str:
    """--executor, or the deprecated --engine (with a one-line notice on stderr), else the
    home's `executor` setting, else the default."""
    if engine is not None:
        print("warning: --engine is deprecated; use --executor", file=sys.stderr)
        if executor is not None and executor != engine:
            raise UserError("give --executor or --engine (its old name), not both")
        return engine
    return executor or configured or DEFAULT_EXECUTOR


Stages = Annotated[
    list[Stage] | None, typer.Option("--stage", help="Only this stage (repeatable).")
]
Mode = Annotated[PlanMode | None, typer.Option("--mode", help="How to choose the cells.")]
Lookback = Annotated[
    int,
    typer.Option(
        "--lookback-days",
        callback=bounded(limits.LOOKBACK_DAYS),
        help="catch_up_recent: days to re-check.",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="backfill_range: redo current cells too.")]
AllowShrink = Annotated[
    bool,
    typer.Option(
        "--allow-shrink",
        help="Allow the plan to remove published items (empty a day that had items, or drop "
        "items of days outside the lookback window); refused otherwise.",
    ),
]
ResumeAllowShrink = Annotated[
    bool,
    typer.Option(
        "--allow-shrink",
        help="Let the job's remaining cells remove published items (its source was cut or "
        "re-pointed since it was planned); refused otherwise.",
    ),
]
ReconciliationId = Annotated[
    int | None,
    typer.Option(
        "--reconciliation-id",
        callback=bounded(limits.RECONCILIATION_ID),
        help="repair: which reconciliation.",
    ),
]
Detach = Annotated[
    bool, typer.Option("--detach", help="Run in a background worker; print the job id.")
]
ShowSteps = Annotated[
    bool, typer.Option("--steps", help="Also print every step, by source and stage.")
]
JobId = Annotated[
    int, typer.Argument(callback=bounded(limits.JOB_ID), help="The job id.", show_default=False)
]


def sourced(home: Path | None) -> service.Context:
    """The home's context; a home without sources is one line saying which home it is."""
    ctx = service.open_context(home)
    if not ctx.settings.sources:
        if home is None:
            chosen_by = "the default; --home or SOFTCOPY_HOME chooses another"
        elif os.environ.get("SOFTCOPY_HOME") and Path(os.environ["SOFTCOPY_HOME"]) == home:
            chosen_by = "from SOFTCOPY_HOME"
        else:
            chosen_by = "from --home"
        raise NoSources(ctx.settings.home, chosen_by)
    return ctx


def plan_options(
    mode: PlanMode,
    sources: list[str] | None,
    stages: list[Stage] | None,
    start: date | None,
    end: date | None,
    lookback_days: int,
    force: bool,
    reconciliation_id: int | None,
    allow_shrink: bool,
    skip_bad_records: bool,
) -> service.PlanOptions:
    start, end = day_range(start, end)
    return service.PlanOptions(
        mode=mode,
        sources=sources,
        stages=stages,
        range_start_day=start,
        range_end_day=end,
        lookback_days=lookback_days,
        force=force,
        reconciliation_id=reconciliation_id,
        allow_shrink=allow_shrink,
        skip_bad_records=skip_bad_records,
    )


Parallel = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        callback=bounded(limits.PARALLEL),
        help="Steps run at once (default: the home's 'parallel' setting, else one per core).",
        show_default=False,
    ),
]
