"""`softcopy ingestion …`: thin wrappers over softcopy.ingestion.service, one call each."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from softcopy import limits
from softcopy.cli import job_render
from softcopy.cli.common import (
    AsJson,
    Day,
    Home,
    RangeEnd,
    RangeStart,
    SkipBad,
    Sources,
    bounded,
    console,
    day_range,
    describe,
    jsonable,
    print_json,
    progress_bar,
)
from softcopy.cli.job_render import plural
from softcopy.errors import NoSources, UserError
from softcopy.ingestion import leases, service
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.jobs import DEFAULT_CHUNK_DAYS
from softcopy.ingestion.models import ReconciliationFinding
from softcopy.ingestion.planner import DEFAULT_LOOKBACK_DAYS
from softcopy.ingestion.states import (
    CellState,
    FindingKind,
    JobStatus,
    LogLevel,
    PlanMode,
    Stage,
)

app = typer.Typer(help="The ingestion control plane: coverage, plans, jobs, verify, reconcile.")
PROBLEM_LINES = 10  # coverage prints this many source problems, then "and N more"
LOG_TAIL = 200  # `logs` shows this many of the newest rows

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


def _sourced(home: Path | None) -> service.Context:
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


def _options(
    mode: PlanMode,
    sources: list[str] | None,
    stages: list[Stage] | None,
    start,
    end,
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


@app.command()
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
        _sourced(home), sources=sources, range_start_day=start, range_end_day=end
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


@app.command()
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
    options = _options(
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
    view = service.plan(_sourced(home), options=options)
    if as_json:
        print_json(
            {"plan": view.plan, "items": view.items, "steps": view.steps, "facts": view.facts}
        )
        return
    _print_plan(view)
    if view.plan.cells:
        console.print(f"run it: softcopy ingestion run --plan-id {view.plan.id}")


Parallel = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        callback=bounded(limits.PARALLEL),
        help="Steps run at once (default: the home's 'parallel' setting, else one per core).",
        show_default=False,
    ),
]


@app.command()
def run(
    plan_id: Annotated[
        int | None,
        typer.Option("--plan-id", callback=bounded(limits.PLAN_ID), help="Run this saved plan."),
    ] = None,
    mode: Mode = None,
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    lookback_days: Lookback = DEFAULT_LOOKBACK_DAYS,
    force: Force = False,
    reconciliation_id: ReconciliationId = None,
    allow_shrink: AllowShrink = False,
    skip_bad_records: SkipBad = False,
    sources: Sources = None,
    stages: Stages = None,
    executor: Executor = None,
    engine: EngineAlias = None,
    chunk_days: Annotated[
        int,
        typer.Option("--chunk-days", callback=bounded(limits.CHUNK_DAYS), help="Days per step."),
    ] = DEFAULT_CHUNK_DAYS,
    replan: Annotated[bool, typer.Option("--replan", help="Re-plan a stale saved plan.")] = False,
    detach: Detach = False,
    parallel: Parallel = None,
    steps: ShowSteps = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Run a saved plan, or plan and run in one call (with --mode)."""
    if (plan_id is None) == (mode is None):
        raise UserError("give either --plan-id or --mode")
    options = None
    if mode is not None:
        options = _options(
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
    ctx = _sourced(home) if mode is not None else service.open_context(home)
    with progress_bar(not as_json and not detach) as progress:
        outcome = service.run(
            ctx,
            plan_id=plan_id,
            options=options,
            executor=chosen_executor(executor, engine, ctx.settings.executor),
            chunk_days=chunk_days,
            replan=replan,
            detach=detach,
            progress=progress,
            parallel=parallel,
        )
    if as_json:
        print_json(outcome)
    elif outcome.job is None:
        why = "; ".join(outcome.facts) or "every cell is current"
        console.print(f"plan {outcome.plan.id}: nothing to do: {why}")
    else:
        _print_job(ctx, outcome.job, steps=steps, detached_pid=outcome.worker_pid)
    if outcome.job is not None and outcome.job.job.status is JobStatus.failed:
        raise typer.Exit(1)


@app.command()
def resume(
    job_id: JobId,
    detach: Detach = False,
    skip_bad_records: SkipBad = False,
    parallel: Parallel = None,
    steps: ShowSteps = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Continue a failed, cancelled or interrupted job from its checkpoints."""
    ctx = service.open_context(home)
    with progress_bar(not as_json and not detach) as progress:
        view = service.resume(
            ctx,
            job_id=job_id,
            detach=detach,
            skip_bad_records=skip_bad_records,
            progress=progress,
            parallel=parallel,
        )
    _emit_job(ctx, view, as_json, steps=steps)
    if view.job.status is JobStatus.failed:
        raise typer.Exit(1)


@app.command()
def cancel(
    job_id: JobId,
    force: Annotated[
        bool, typer.Option("--force", help="Also stop the worker process now.")
    ] = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Ask a job to stop at its next day boundary (or now, with --force)."""
    ctx = service.open_context(home)
    _emit_job(ctx, service.cancel(ctx, job_id=job_id, force=force), as_json)


@app.command()
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


@app.command()
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
        _sourced(home),
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


@app.command("jobs")
def list_jobs(
    status: Annotated[
        JobStatus | None, typer.Option("--status", help="Only jobs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", callback=bounded(limits.LIMIT))] = 20,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Recent jobs, newest first."""
    ctx = service.open_context(home)
    rows = service.list_jobs(ctx, status=status, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(
            f"no {status} jobs" if status else "no jobs yet: softcopy ingestion run --mode …",
            markup=False,
        )
        return
    table = Table("id", "status", "plan", "executor", "cells", "created", "error")
    for job in rows:
        waited = leases.unclaimed_for(job, now=ctx.clock(), timeout=ctx.settings.lease_timeout)
        table.add_row(
            str(job.id),
            f"{job.status}, {leases.describe_wait(waited)}" if waited else str(job.status),
            str(job.plan_id),
            job.executor,
            f"{job.cells_done}/{job.cells_total}",
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
            job.error or "",
        )
    console.print(table)


@app.command()
def show(
    job_id: JobId, steps: ShowSteps = False, home: Home = None, as_json: AsJson = False
) -> None:
    """A job in a few lines: what it is, its progress, failures and what to run next."""
    ctx = service.open_context(home)
    _emit_job(ctx, service.show_job(ctx, job_id=job_id), as_json, steps=steps)


@app.command("logs")
def job_logs(
    job_id: JobId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream until the job ends.")
    ] = False,
    level: Annotated[LogLevel | None, typer.Option("--level", help="At least this level.")] = None,
    step: Annotated[
        int | None,
        typer.Option("--step", callback=bounded(limits.STEP), help="Only this step (its #)."),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source.")] = None,
    day: Day = None,
    limit: Annotated[
        int,
        typer.Option("--limit", callback=bounded(limits.LOG_LIMIT), help="Rows per page."),
    ] = LOG_TAIL,
    page: Annotated[
        int,
        typer.Option(
            "--page", callback=bounded(limits.LOG_PAGE), help="1: the newest rows; 2: older."
        ),
    ] = 1,
    before: Annotated[
        int | None,
        typer.Option(
            "--before", callback=bounded(limits.BEFORE), help="Only rows older than this id."
        ),
    ] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A job's newest log rows (a page of them, oldest first); --follow streams new ones."""
    ctx = service.open_context(home)
    filters = {"level": level, "step": step, "source": source, "day": day}
    if follow:
        for row in service.follow_logs(ctx, job_id=job_id, **filters):  # type: ignore[arg-type]
            if as_json:  # one compact JSON object per line (JSON Lines)
                print(json.dumps(jsonable(row), ensure_ascii=False), flush=True)
            else:
                _print_log_row(row)
        waited = service.show_job(ctx, job_id=job_id).unclaimed_seconds
        if waited:  # the stream stopped with the job still waiting for a worker
            print(
                f"job {job_id} is queued, {leases.describe_wait(waited)}: no worker took it; "
                f"start one with `softcopy ingestion worker {job_id}`",
                file=sys.stderr,
            )
        return
    tail = service.log_tail(ctx, job_id=job_id, before_id=before, page=page, limit=limit, **filters)  # type: ignore[arg-type]
    if as_json:
        print_json(tail.records)
        return
    for row in tail.records:
        _print_log_row(row)
    newest = page == 1 and before is None
    console.print(
        _log_footer(job_id, tail, filters, newest), markup=False, highlight=False, soft_wrap=True
    )


def _finding_command(finding: ReconciliationFinding) -> str:
    """The command a finding about a job asks for, in this face's words."""
    if finding.kind is FindingKind.dead_lease:
        return f" (softcopy ingestion resume {finding.job_id})"
    if finding.kind is FindingKind.unclaimed_job:
        return f" (softcopy ingestion worker {finding.job_id})"
    return ""


def _print_log_row(row) -> None:  # type: ignore[no-untyped-def]
    where = " ".join(str(x) for x in (row.source, row.day) if x)
    console.print(
        f"{row.id:>7} {row.ts:%H:%M:%S} {row.level:<7} {row.event:<16} {where} {row.message}",
        markup=False,
        highlight=False,
        soft_wrap=True,  # one row, one line: pipes and greps see whole rows
    )


def _log_footer(job_id: int, tail: service.LogPage, filters: dict, newest: bool) -> str:  # type: ignore[type-arg]
    """'showing the last 200 of 1,821 rows', and how to see the older ones."""
    rows = "matching rows" if any(v is not None for v in filters.values()) else "rows"
    shown = len(tail.records)
    if not tail.total:
        return f"no {rows}"
    if not tail.records:
        return f"no {rows} on this page ({tail.total:,} in all)"
    if shown == tail.total:
        return (
            f"showing all {tail.total:,} {rows}" if shown != 1 else f"showing the one {rows[:-1]}"
        )
    which = "the last" if newest else "older"
    line = f"showing {which} {shown:,} of {tail.total:,} {rows}"
    if tail.older:
        again = "".join(
            f" --{name} {value}" for name, value in filters.items() if value is not None
        )
        line += f"; older: softcopy ingestion logs {job_id}{again} --before {tail.records[0].id}"
    return line


@app.command()
def worker(
    job: Annotated[
        int | None,
        typer.Argument(
            callback=bounded(limits.JOB_ID), help="Run this queued job.", show_default=False
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once/--loop", help="One job and exit, or keep polling.")
    ] = True,
    job_option: Annotated[
        int | None,
        typer.Option(
            "--job-id",
            callback=bounded(limits.JOB_ID),
            help="Run this queued job (or as argument).",
        ),
    ] = None,
    parallel: Parallel = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Claim queued jobs and run them (what --detach starts)."""
    if job is not None and job_option is not None:
        raise UserError("give the job id once: `worker 3` or `worker --job-id 3`")
    job_id = job if job is not None else job_option
    ran = service.work(
        service.open_context(home),
        once=once,
        job_id=job_id,
        parallel=parallel,
        on_fault=lambda fault: print(f"worker: {describe(fault)}; polling on", file=sys.stderr),
    )
    if as_json:
        print_json({"jobs": ran})
    else:
        console.print(f"ran jobs: {', '.join(map(str, ran)) or 'none'}")


def _emit_job(
    ctx: service.Context, view: service.JobView, as_json: bool, *, steps: bool = False
) -> None:
    if as_json:
        print_json(view)
    else:
        _print_job(ctx, view, steps=steps)


def _print_job(
    ctx: service.Context,
    view: service.JobView,
    *,
    steps: bool = False,
    detached_pid: int | None = None,
) -> None:
    if steps:
        job_render.print_steps(view)
    # a failed job's next command: resume, with --skip-bad-records when it would fail again
    failed = view.job.status is JobStatus.failed
    check = service.check_resume(ctx, job_id=view.job.id or 0) if failed else None
    job_render.print_summary(view, detached_pid=detached_pid, resume=check)


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
