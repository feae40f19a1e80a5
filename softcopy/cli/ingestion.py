"""`softcopy ingestion …`: thin wrappers over softcopy.ingestion.service, one call each.
This module holds the commands about what is in the index (coverage, plan, verify,
reconcile); ingestion_jobs the ones that start, follow and stop jobs."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from softcopy import limits
from softcopy.cli import ingestion_jobs as jobs
from softcopy.cli.common import (
    AsJson,
    Home,
    RangeEnd,
    RangeStart,
    SkipBad,
    Sources,
    bounded,
    console,
    day_range,
    print_json,
)
from softcopy.cli.ingestion_options import (
    AllowShrink,
    Force,
    Lookback,
    ReconciliationId,
    Stages,
    plan_options,
    sourced,
)
from softcopy.errors import UserError
from softcopy.ingestion import service
from softcopy.ingestion.models import ReconciliationFinding
from softcopy.ingestion.planner import DEFAULT_LOOKBACK_DAYS
from softcopy.ingestion.states import CellState, FindingKind, PlanMode, Stage
from softcopy.views.timeline import plural

PROBLEM_LINES = 10  # coverage prints this many source problems, then "and N more"


def coverage(
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    sources: Sources = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Take a coverage snapshot: per source, day and stage, what is current and what is not."""
    start, end = day_range(range_start_day, range_end_day)  # type: ignore[arg-type]
    report = service.coverage(
        sourced(home), sources=sources, range_start_day=start, range_end_day=end
    )
    if as_json:
        print_json(
            {
                "snapshot": report.snapshot,
                "cells": report.cells,
                "future_days": report.future_days,
                "problems": report.problems,
                "problems_total": report.problems_total,
            }
        )
        return
    counts = Counter((c.source, c.stage, c.state) for c in report.cells)
    states = list(CellState)
    table = Table(
        "source",
        "stage",
        *[str(s) for s in states],
        title=f"coverage snapshot {report.snapshot.id}",
    )
    for source in sorted({c.source for c in report.cells}):
        for stage in Stage:
            table.add_row(
                source, str(stage), *[str(counts[(source, stage, s)] or "") for s in states]
            )
    console.print(table)
    console.print(
        f"took {report.snapshot.seconds * 1000:.0f} ms; "
        f"fingerprint {report.snapshot.fingerprint[:12]}"
    )
    for future in report.future_days:
        console.print(f"warning: {future.describe()}", markup=False, soft_wrap=True)
    for problem in report.problems[:PROBLEM_LINES]:
        console.print(f"problem: {problem.describe()}", markup=False, soft_wrap=True)
    if report.problems_total > PROBLEM_LINES:
        console.print(f"problem: … and {report.problems_total - PROBLEM_LINES} more (--json)")


def plan(
    mode: Annotated[PlanMode, typer.Option("--mode", help="How to choose the cells.")],
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    lookback_days: Lookback = DEFAULT_LOOKBACK_DAYS,
    force: Force = False,
    reconciliation_id: ReconciliationId = None,
    allow_shrink: AllowShrink = False,
    skip_bad_records: SkipBad = False,
    sources: Sources = None,
    stages: Stages = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Make and save a plan; `run --plan-id` applies it."""
    options = plan_options(
        mode,
        sources,
        stages,
        range_start_day,
        range_end_day,
        lookback_days,
        force,
        reconciliation_id,
        allow_shrink,
        skip_bad_records,
    )
    view = service.plan(sourced(home), options=options)
    if as_json:
        print_json(
            {"plan": view.plan, "items": view.items, "steps": view.steps, "facts": view.facts}
        )
        return
    _print_plan(view)
    if view.plan.cells:
        console.print(f"run it: softcopy ingestion run --plan-id {view.plan.id}")


def verify(
    job: Annotated[
        int | None,
        typer.Argument(callback=bounded(limits.JOB_ID), help="The job id.", show_default=False),
    ] = None,
    job_option: Annotated[
        int | None,
        typer.Option(
            "--job-id", callback=bounded(limits.JOB_ID), help="The job to verify (or as argument)."
        ),
    ] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Prove every cell a job completed: artifact digests and index contents."""
    if (job is None) == (job_option is None):
        raise UserError("give the job id once: `verify 3` or `verify --job-id 3`")
    job_id = job if job is not None else job_option
    assert job_id is not None
    result = service.verify(service.open_context(home), job_id=job_id)
    if as_json:
        print_json(result)
    else:
        verdict = "[green]passed[/]" if result.ok else "[red]FAILED[/]"
        console.print(
            f"verification {result.id} of job {job_id}: {verdict}, "
            f"{plural(result.cells_checked, 'cell')} checked"
        )
        for problem in result.problems:
            console.print(
                f"  {problem['source']} {problem['day']} {problem['stage']}: {problem['problem']}",
                markup=False,
            )
    if not result.ok:
        raise typer.Exit(1)


def reconcile(
    repair: Annotated[
        bool, typer.Option("--repair", help="Make a repair plan from the findings.")
    ] = False,
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    sources: Sources = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Compare persisted state with sources, artifacts, the index and live jobs."""
    start, end = day_range(range_start_day, range_end_day)  # type: ignore[arg-type]
    report = service.reconcile(
        sourced(home),
        sources=sources,
        range_start_day=start,
        range_end_day=end,
        repair=repair,
    )
    if as_json:
        print_json(report)
    else:
        console.print(
            f"reconciliation {report.run.id}: {plural(report.run.findings_count, 'finding')}"
        )
        for f in report.findings:
            where = " ".join(
                str(x) for x in (f.source, f.day, f.stage, f.job_id and f"job {f.job_id}") if x
            )
            console.print(f"  {f.kind}: {where}: {f.detail}{_finding_command(f)}", markup=False)
        if report.repair_refused is not None:
            console.print(f"no repair plan: {report.repair_refused}", markup=False, soft_wrap=True)
            console.print(
                "plan it anyway: softcopy ingestion plan --mode repair "
                f"--reconciliation-id {report.run.id} --allow-shrink",
                soft_wrap=True,
            )
        if report.repair_plan is not None:
            console.print(
                f"repair plan {report.repair_plan.id} "
                f"({plural(report.repair_plan.cells, 'cell')}): "
                f"softcopy ingestion run --plan-id {report.repair_plan.id}"
            )
    if report.run.findings_count:
        raise typer.Exit(1)


def _finding_command(finding: ReconciliationFinding) -> str:
    """The command a finding about a job asks for, in this face's words."""
    if finding.kind is FindingKind.dead_lease:
        return f" (softcopy ingestion resume {finding.job_id})"
    if finding.kind is FindingKind.unclaimed_job:
        return f" (softcopy ingestion worker {finding.job_id})"
    return ""


def _print_plan(view: service.PlanView) -> None:
    p = view.plan
    console.print(
        f"plan {p.id} ({p.mode}): {plural(p.cells, 'cell')} in {plural(len(view.steps), 'step')}"
    )
    counts = Counter((i.source, i.stage, i.state) for i in view.items)
    table = Table("source", "stage", "state", "cells")
    order = {stage: i for i, stage in enumerate(Stage)}
    for (source, stage, state), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])
    ):
        table.add_row(source, str(stage), str(state), str(n))
    if counts:
        console.print(table)
    for fact in view.facts:  # why it is empty, or what it leaves outside its lookback
        console.print(f"note: {fact}")


app = typer.Typer(help="The ingestion control plane: coverage, plans, jobs, verify, reconcile.")
for name, command in (
    ("coverage", coverage),
    ("plan", plan),
    ("run", jobs.run),
    ("resume", jobs.resume),
    ("cancel", jobs.cancel),
    ("verify", verify),
    ("reconcile", reconcile),
    ("jobs", jobs.list_jobs),
    ("show", jobs.show),
    ("logs", jobs.job_logs),
    ("worker", jobs.worker),
):
    app.command(name)(command)
