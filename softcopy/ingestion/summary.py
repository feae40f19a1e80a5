"""A job in a few facts: what it is (its title), how far it got, how fast, what failed.

Every face shows a job through this instead of its step list, which runs to thousands of
rows on a long backfill. Facts only; each face chooses its own words (and its advice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from softcopy.ingestion.models import IngestionJob, JobStep
from softcopy.ingestion.states import JOB_LIVE, PlanMode, StepStatus

FAILED_LISTED = 5  # the summary names this many failed steps; `failed_total` counts them all
MODE_WORDS = {  # a title's first word
    PlanMode.catch_up_recent: "catch-up",
    PlanMode.backfill_range: "backfill",
    PlanMode.repair: "repair",
}


@dataclass(frozen=True)
class JobSummary:
    title: str  # "backfill 2016-12-01 → 2026-12-01 · all sources"
    cells_done: int  # cells (source, day, stage) with a checkpoint
    cells_total: int
    elapsed_seconds: float | None  # since the job started (to its end, once ended)
    rate: float | None  # cells per second over the elapsed time
    eta_seconds: float | None  # for a live job with a known rate: the rest at that rate
    failed_steps: list[JobStep]  # the first FAILED_LISTED, in step order
    failed_total: int
    running_steps: list[JobStep]

    @property
    def percent(self) -> int:
        return 100 * self.cells_done // self.cells_total if self.cells_total else 100


def title(
    *,
    mode: PlanMode,
    params: dict[str, Any],
    sources_all: Sequence[str],
    first_day: date | None,
    last_day: date | None,
) -> str:
    """What a plan's job does, in one line: mode, days and sources."""
    start = params.get("range_start_day") or (first_day.isoformat() if first_day else None)
    end = params.get("range_end_day") or (last_day.isoformat() if last_day else None)
    if mode is PlanMode.catch_up_recent:
        days = f"last {params.get('lookback_days')} days"
    elif start or end:
        days = f"{start or '…'} → {end or '…'}"
    else:
        days = "no days"
    if mode is PlanMode.repair and params.get("reconciliation_id"):
        days += f" from reconciliation {params['reconciliation_id']}"
    names = list(params.get("sources") or [])
    which = "all sources" if not names or set(names) >= set(sources_all) else ", ".join(names)
    stages = params.get("stages") or []
    if stages and len(stages) < 3:
        which += f" · {', '.join(stages)} only"
    return f"{MODE_WORDS[mode]} {days} · {which}"


def summarize(
    job: IngestionJob,
    steps: Sequence[tuple[JobStep, int]],
    *,
    title: str,
    now: datetime,
) -> JobSummary:
    """`steps`: each step with how many of its cells have a checkpoint (none: the job's own
    count, for lists of jobs)."""
    done = sum(n for _, n in steps) if steps else job.cells_done
    total = job.cells_total or sum(len(s.days) for s, _ in steps)
    elapsed = None
    if job.started_at is not None:
        end = job.finished_at if job.status not in JOB_LIVE and job.finished_at else now
        elapsed = max((_aware(end) - _aware(job.started_at)).total_seconds(), 0.0)
    rate = done / elapsed if elapsed and done else None
    eta = None
    if job.status in JOB_LIVE and rate:
        eta = (total - done) / rate
    failed = [s for s, _ in steps if s.status is StepStatus.failed]
    running = [s for s, _ in steps if s.status is StepStatus.running]
    return JobSummary(
        title=title,
        cells_done=done,
        cells_total=total,
        elapsed_seconds=elapsed,
        rate=rate,
        eta_seconds=eta,
        failed_steps=failed[:FAILED_LISTED],
        failed_total=len(failed),
        running_steps=running,
    )


def _aware(moment: datetime) -> datetime:
    """A naive datetime was written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
