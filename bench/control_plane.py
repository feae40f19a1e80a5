"""Control-plane benchmark: a 365-day x 3-source x 3-stage backfill (3,285 cells) with the
stage work replaced by a no-op through the executor interface, on SQLite.

Reports control-plane overhead per cell (plan, job and steps, a checkpoint per day, lease
fencing, heartbeats, logs) and coverage/plan time over ten years of days. The baseline,
run in the same process, is the least a durable per-day record can cost: one row inserted
and committed per cell through the same database engine.

    .venv/bin/python bench/control_plane.py
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from softcopy.config import add_source, load_settings
from softcopy.db import get_engine
from softcopy.ingestion import executors, service
from softcopy.ingestion.states import JobStatus, PlanMode, Stage
from softcopy.memory.stage import StageContext, StageResult
from softcopy.registry import EXECUTORS

END = date(2026, 10, 31)


def make_home(root: Path, days: int) -> Path:
    """Three sources with one item on every day: notes, chat (JSONL) and commits-like JSONL."""
    home = root / f"home-{days}"
    notes = home / "notes"
    notes.mkdir(parents=True)
    chat = home / "chat.jsonl"
    log = home / "log.jsonl"
    with chat.open("w") as c, log.open("w") as g:
        for i in range(days):
            day = END - timedelta(days=i)
            (notes / f"{day.isoformat()}.md").write_text(f"# day {i}\nnote {i}\n")
            ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).isoformat()
            c.write(json.dumps({"id": f"c{i}", "ts": ts, "text": f"chat {i}"}) + "\n")
            g.write(json.dumps({"id": f"g{i}", "ts": ts, "text": f"log {i}"}) + "\n")
    add_source(home, name="notes", kind="notes", path="notes")
    add_source(home, name="chat", kind="jsonl", path="chat.jsonl")
    add_source(home, name="log", kind="jsonl", path="log.jsonl")
    return home


def noop(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
    return StageResult(stage, source, day, 1, 0, "in", "out")


def context(home: Path) -> service.Context:
    settings = load_settings(home, env={})
    return service.Context(settings=settings, engine=get_engine(settings.database_url))


def backfill(ctx: service.Context, days: int) -> service.PlanOptions:
    return service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=END - timedelta(days=days - 1),
        range_end_day=END,
    )


def timed(fn):
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def main() -> None:
    EXECUTORS.register("noop", lambda: executors.InlineExecutor(stage_runner=noop))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        year = context(make_home(root, 365))
        service.coverage(year)  # first scan of the sources: not control-plane overhead
        plan, plan_s = timed(lambda: service.plan(year, options=backfill(year, 365)))
        cells = plan.plan.cells
        outcome, run_s = timed(
            lambda: service.run(year, plan_id=plan.plan.id, executor="noop", chunk_days=7)
        )
        assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
        assert outcome.job.job.cells_done == cells == 365 * 3 * 3

        baseline_engine = year.engine
        with baseline_engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_row (id INTEGER PRIMARY KEY, cell TEXT)"))

        def bare() -> None:
            for i in range(cells):
                with baseline_engine.begin() as conn:
                    conn.execute(text("INSERT INTO bench_row (cell) VALUES (:c)"), {"c": str(i)})

        _, bare_s = timed(bare)

        decade = context(make_home(root, 3653))
        service.coverage(decade)  # first scan
        report, coverage_s = timed(lambda: service.coverage(decade))
        decade_plan, decade_plan_s = timed(
            lambda: service.plan(decade, options=backfill(decade, 3653))
        )

    per_cell = run_s / cells * 1000
    print(f"backfill: {cells} cells (365 days x 3 sources x 3 stages), no-op stage work")
    print(f"  plan                      {plan_s * 1000:8.0f} ms")
    print(
        f"  run (job, steps, checkpoints, fencing, heartbeats, logs)"
        f" {run_s:6.2f} s = {per_cell:.2f} ms per cell"
    )
    print(
        f"  baseline: one row committed per cell {bare_s:6.2f} s"
        f" = {bare_s / cells * 1000:.2f} ms per cell"
    )
    print(f"  control plane / baseline  x{run_s / bare_s:.1f}")
    print(f"ten years: {len(report.cells)} cells (3,653 days x 3 sources x 3 stages)")
    print(
        "  coverage (scan unchanged sources, compute, persist snapshot)"
        f" {coverage_s * 1000:6.0f} ms"
    )
    print(
        f"  plan backfill_range over ten years   {decade_plan_s * 1000:6.0f} ms"
        f" ({decade_plan.plan.cells} cells)"
    )


if __name__ == "__main__":
    main()
