"""Notebook executor benchmark: the same 36-step job (the 30-day demo archive; 3 sources x
3 stages x 4 chunks of 8 days) run by `papermill` (a kernel per step) and by `notebook` (one
warm kernel for the job), side by side in one run, with `inline` as the baseline.

All three run the same `run_step_days` on the same data, so an executor's overhead per step is
its mean step time minus inline's: kernel start-up, papermill, writing the executed notebook.
Reported all-in (the warm executor's one kernel start spread over the job) and steady (the
steps after the first). The three runs must also leave identical search indexes.

    .venv/bin/python bench/notebook_executor.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.demo import build_demo
from softcopy.ingestion import executors, service
from softcopy.ingestion.executors import StepExecutor, StepTicket
from softcopy.ingestion.states import JobStatus, PlanMode
from softcopy.memory import index
from softcopy.registry import EXECUTORS

TODAY = date(2026, 3, 31)
DAYS = 30
CHUNK_DAYS = 8
STEPS = 36
EXECUTORS_TIMED = ("inline", "papermill", "notebook")


class Timed:
    """A step executor that times each step of the executor it wraps."""

    def __init__(self, inner: StepExecutor) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds: list[float] = []

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        began = time.perf_counter()
        try:
            return self.inner.run_step(ticket, on_day)
        finally:
            self.seconds.append(time.perf_counter() - began)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def run_job(root: Path, name: str) -> tuple[Timed, float, list[tuple[str, ...]]]:
    """The 36-step backfill on a fresh demo home; the timed executor, wall seconds, index rows."""
    home = root / name
    build_demo(home, days=DAYS, today=TODAY)
    settings = load_settings(home, env={})
    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    made: list[Timed] = []

    def factory() -> Timed:
        made.append(Timed(executors.get_executor(name)))
        return made[-1]

    EXECUTORS.register(f"timed-{name}", factory)
    options = service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=TODAY - timedelta(days=DAYS - 1),
        range_end_day=TODAY,
    )
    queued = service.enqueue(ctx, options=options, executor=f"timed-{name}", chunk_days=CHUNK_DAYS)
    assert queued.job is not None and queued.job.job.id is not None
    assert len(queued.job.steps) == STEPS, f"{len(queued.job.steps)} steps, not {STEPS}"
    began = time.perf_counter()
    ran = service.work(ctx, once=True, job_id=queued.job.job.id)
    wall = time.perf_counter() - began
    view = service.show_job(ctx, job_id=ran[0])
    assert view.job.status is JobStatus.succeeded, view.job.error
    with index.connect(settings.index_path) as conn:
        rows = sorted(conn.execute("SELECT source, day, item_id, content_hash FROM docs"))
    index.close_all()
    return made[-1], wall, rows


def main() -> None:
    import papermill  # noqa: F401  imported once up front: an import is not per-step overhead

    import softcopy.ingestion.notebook_executors
    import softcopy.ingestion.warm_kernel  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_job(Path(tmp), name) for name in EXECUTORS_TIMED}
    indexes = {name: rows for name, (_, _, rows) in results.items()}
    assert indexes["papermill"] == indexes["inline"] == indexes["notebook"], "indexes differ"

    base = results["inline"][0].seconds
    print(
        f"{STEPS}-step job: {DAYS}-day demo archive, 3 sources x 3 stages x {CHUNK_DAYS}-day "
        f"chunks; {len(indexes['inline'])} index rows, identical for all executors"
    )
    print(
        f"{'executor':<10} {'job s':>7} {'step mean ms':>13} {'first step ms':>14} "
        f"{'overhead/step ms':>17} {'steady overhead ms':>19}"
    )
    overhead: dict[str, tuple[float, float]] = {}
    for name in EXECUTORS_TIMED:
        timed, wall, _ = results[name]
        s = timed.seconds
        all_in = (statistics.mean(s) - statistics.mean(base)) * 1000
        steady = (statistics.mean(s[1:]) - statistics.mean(base[1:])) * 1000
        overhead[name] = (all_in, steady)
        print(
            f"{name:<10} {wall:>7.2f} {statistics.mean(s) * 1000:>13.1f} {s[0] * 1000:>14.1f} "
            f"{all_in:>17.1f} {steady:>19.1f}"
        )
    pm, nb = overhead["papermill"], overhead["notebook"]
    print(
        f"papermill / notebook overhead per step: {pm[0] / nb[0]:.1f}x all-in, "
        f"{pm[1] / nb[1]:.1f}x steady (aim: at least 20x)"
    )


if __name__ == "__main__":
    main()
