"""`softcopy ingestion run | resume | cancel | jobs | show | logs | worker`: the commands
that start, follow and stop jobs, each one call of softcopy.ingestion.service."""

from __future__ import annotations

import json
import sys
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
    describe,
    jsonable,
    print_json,
    progress_bar,
)
from softcopy.cli.ingestion_options import (
    AllowShrink,
    Detach,
    EngineAlias,
    Executor,
    Force,
    JobId,
    Lookback,
    Mode,
    Parallel,
    ReconciliationId,
    ResumeAllowShrink,
    ShowSteps,
    Stages,
    chosen_executor,
    plan_options,
    sourced,
)
from softcopy.errors import EnvironmentFault, UserError
from softcopy.ingestion import leases, service
from softcopy.ingestion.jobs import DEFAULT_CHUNK_DAYS
from softcopy.ingestion.planner import DEFAULT_LOOKBACK_DAYS
from softcopy.ingestion.states import JOB_RESUMABLE, JobStatus, LogLevel

LOG_TAIL = 200  # `logs` shows this many of the newest rows


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
        typer.Option(
            "--chunk-days",
            callback=bounded(limits.CHUNK_DAYS),
            help="Days with work per step (days without any are skipped, not counted).",
        ),
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
    ctx = sourced(home) if mode is not None else service.open_context(home)
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


def resume(
    job_id: JobId,
    detach: Detach = False,
    skip_bad_records: SkipBad = False,
    allow_shrink: ResumeAllowShrink = False,
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
            allow_shrink=allow_shrink,
            progress=progress,
            parallel=parallel,
        )
    _emit_job(ctx, view, as_json, steps=steps)
    if view.job.status is JobStatus.failed:
        raise typer.Exit(1)


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
    if as_json:  # what the API's GET /jobs lists: each job with its unclaimed_seconds
        print_json(service.listed_jobs(ctx, status=status, limit=limit))
        return
    rows = service.list_jobs(ctx, status=status, limit=limit)
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


def show(
    job_id: JobId, steps: ShowSteps = False, home: Home = None, as_json: AsJson = False
) -> None:
    """A job in a few lines: what it is, its progress, failures and what to run next."""
    ctx = service.open_context(home)
    _emit_job(ctx, service.show_job(ctx, job_id=job_id), as_json, steps=steps)


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
    # a resumable job's next command: resume, with --skip-bad-records when it would fail
    # again and --allow-shrink when its rest would remove published items
    check = None
    if view.job.status in JOB_RESUMABLE:
        try:  # the check refreshes the sources' scan: a read-only home cannot, and still shows
            check = service.check_resume(ctx, job_id=view.job.id or 0)
        except EnvironmentFault:
            check = None
    job_render.print_summary(view, detached_pid=detached_pid, resume=check)
