"""Stage runs outside the jobs, shared by `memory export|embed|publish` and `ingest`: the
cells jobs hold, and the human output."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

from rich.table import Table
from sqlalchemy.engine import Engine

from softcopy.cli.common import console, err_console, print_json
from softcopy.config import Settings
from softcopy.ingestion import service
from softcopy.ingestion.leases import describe_wait
from softcopy.ingestion.states import Stage
from softcopy.memory.runner import Held, RunSummary


def held_cells(
    settings: Settings,
    engine: Engine,
    *,
    sources: list[str],
    stages: list[Stage],
    start: date | None,
    end: date | None,
    done_by: str,
) -> tuple[Held, list[service.TakenOver]]:
    """What the stage run must leave to live jobs, after taking the cells of queued jobs no
    worker claimed within the lease timeout (as `ingestion run` does); those are told on
    stderr, one line each, with how to continue them."""
    ctx = service.Context(settings, engine)
    taken = service.take_unclaimed_cells(
        ctx, sources=sources, stages=stages, start=start, end=end, taker=f"a {done_by} run"
    )
    for job in taken:
        err_console.print(
            f"job {job.job_id} was queued since {job.queued_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{describe_wait(job.unclaimed_seconds)} (no worker claimed it): this run took its "
            f"cells and job {job.job_id} is now interrupted; `softcopy ingestion resume "
            f"{job.job_id}` continues it",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return service.held_cells(ctx, sources=sources), taken


def run_summary(
    summary: RunSummary, *, as_json: bool, taken: Sequence[service.TakenOver] = ()
) -> None:
    if as_json:
        print_json(
            {
                "ok": summary.ok,
                "results": summary.results,
                "failures": summary.failures,
                "undated": summary.undated,
                "took_cells_of": list(taken),
            }
        )
        return
    days = Counter((r.stage, r.source) for r in summary.results)
    items = Counter()
    for r in summary.results:
        items[(r.stage, r.source)] += r.items
    failed = Counter((f.stage, f.source) for f in summary.failures)
    table = Table("stage", "source", "days", "items", "skipped", "failed", title="stage runs")
    for key in sorted(set(days) | set(failed)):
        stage, source = key
        skipped = summary.skipped(source, stage)
        table.add_row(
            str(stage), source, str(days[key]), str(items[key]), str(skipped), str(failed[key])
        )
    console.print(table)
    problems = sorted({p for r in summary.results for p in r.problems})
    _lines("skipped", problems)
    undated = [p for lines in summary.undated.values() for p in lines]
    _lines("skipped, day unknown", undated)
    if undated and not summary.skip_bad_records:
        err_console.print(
            f"not ok: {len(undated)} record(s) whose day cannot be told (no day failed); "
            "fix them, or --skip-bad-records accepts them",
            soft_wrap=True,
        )
    _lines("failed", [failure.error for failure in summary.failures])
    if any(failure.unreadable for failure in summary.failures):
        err_console.print("--skip-bad-records skips (and counts) unreadable records")
    if any(failure.shrink for failure in summary.failures):
        err_console.print("--allow-shrink publishes them anyway (the days' items are removed)")


def _lines(label: str, lines: list[str], most: int = 10) -> None:
    for line in lines[:most]:
        err_console.print(f"{label}: {line}", markup=False, highlight=False, soft_wrap=True)
    if len(lines) > most:
        err_console.print(f"{label}: … and {len(lines) - most} more", soft_wrap=True)
