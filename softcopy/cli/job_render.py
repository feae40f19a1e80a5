"""How the CLI shows a job: a summary of a few lines, the step table on request (--steps)."""

from __future__ import annotations

from rich.table import Table

from softcopy.cli.common import console
from softcopy.ingestion import leases
from softcopy.ingestion.service import JobView, ResumeCheck
from softcopy.ingestion.states import JOB_RESUMABLE, JobStatus, Stage
from softcopy.views.timeline import duration, plural


def next_command(view: JobView, resume: ResumeCheck | None = None) -> str | None:
    """What to run next for a job in this state (`resume`: what `check_resume` found for a
    resumable job: resumed as it is, would it fail again on unreadable records, or remove
    published items?)."""
    job = view.job
    status = job.status
    if status is JobStatus.succeeded:
        if view.verification is None:
            return f"softcopy ingestion verify {job.id}"
        return None
    if status in JOB_RESUMABLE:
        skip = " --skip-bad-records" if resume and resume.fails_on_bad_records else ""
        # said with the `blocked` line: what it would remove
        shrink = " --allow-shrink" if resume and resume.removes_published else ""
        return f"softcopy ingestion resume {job.id}{skip}{shrink}"
    if status is JobStatus.queued and view.unclaimed_seconds:
        return f"softcopy ingestion worker {job.id}"
    return f"softcopy ingestion logs {job.id} --follow"


def print_summary(
    view: JobView, *, detached_pid: int | None = None, resume: ResumeCheck | None = None
) -> None:
    """The job in a few lines: title, status, cells, timing, failures, what next."""
    job, summary = view.job, view.summary
    assert summary is not None
    console.print(f"job {job.id}: {summary.title}", markup=False, highlight=False)
    status = f"{job.status} · executor {job.executor} · plan {job.plan_id}"
    if detached_pid:
        status += f" · worker pid {detached_pid}"
    if view.unclaimed_seconds:
        status += f" · {leases.describe_wait(view.unclaimed_seconds)}, no worker took it"
    console.print(f"  status   {status}", markup=False, highlight=False)
    if job.dask_dashboard:
        console.print(f"  dask     {job.dask_dashboard}", markup=False, highlight=False)
    cells = f"{summary.cells_done:,}/{plural(summary.cells_total, 'cell')} ({summary.percent}%)"
    if summary.elapsed_seconds is not None:
        cells += f" · elapsed {duration(summary.elapsed_seconds)}"
    if summary.rate:
        cells += f" · {summary.rate:.1f} cells/s"
    if summary.eta_seconds is not None:
        cells += f" · ETA {duration(summary.eta_seconds)}"
    console.print(f"  cells    {cells}", markup=False, highlight=False)
    for step in summary.running_steps[:1]:
        console.print(
            f"  running  {step.stage} {step.source} {step.start_day}…{step.end_day}",
            markup=False,
            highlight=False,
        )
    if job.error:
        console.print(f"  error    {job.error}", markup=False, highlight=False, soft_wrap=True)
    for step in summary.failed_steps:
        console.print(
            f"  failed   step {step.ordinal}: {step.stage} {step.source} "
            f"{step.start_day}…{step.end_day}: {step.error or ''}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if summary.failed_total > len(summary.failed_steps):
        more = summary.failed_total - len(summary.failed_steps)
        console.print(f"  failed   … and {plural(more, 'more step')} (--steps)", markup=False)
    if view.verification is not None:
        v = view.verification
        console.print(
            f"  verified {'passed' if v.ok else 'FAILED'} "
            f"(verification {v.id}, {plural(v.cells_checked, 'cell')})",
            markup=False,
            highlight=False,
        )
    if resume and resume.blocker:
        console.print(f"  blocked  {resume.blocker}", markup=False, highlight=False, soft_wrap=True)
    advice = next_command(view, resume)
    if advice:
        console.print(f"  next     {advice}", markup=False, highlight=False, soft_wrap=True)


def print_steps(view: JobView) -> None:
    """Every step, grouped by source, then stage in pipeline order."""
    order = {stage: i for i, stage in enumerate(Stage)}
    table = Table("source", "stage", "#", "days", "cells", "status", "attempts")
    workers = any(v.step.worker for v in view.steps)  # the dask executor says where each ran
    if workers:
        table.add_column("worker", overflow="fold")
    table.add_column("artifact", overflow="fold")
    rows = sorted(view.steps, key=lambda v: (v.step.source, order[v.step.stage], v.step.ordinal))
    for i, sv in enumerate(rows):
        s = sv.step
        last_of_group = i + 1 == len(rows) or (rows[i + 1].step.source, rows[i + 1].step.stage) != (
            s.source,
            s.stage,
        )
        table.add_row(
            s.source,
            str(s.stage),
            str(s.ordinal),
            f"{s.start_day}…{s.end_day}",
            f"{sv.days_done}/{len(s.days)}",
            str(s.status),
            str(s.attempts),
            *([s.worker or ""] if workers else []),
            s.artifact or "",
            end_section=last_of_group,
        )
    console.print(table)
