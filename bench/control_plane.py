"""Control-plane benchmark: a 365-day x 3-source x 3-stage backfill (3,285 cells) with the
stage work replaced by a no-op through the executor interface, on SQLite.

Reports control-plane overhead per cell (plan, job and steps, a checkpoint per day, lease
fencing, heartbeats, logs) and coverage/plan time over ten years of days. The baseline,
run in the same process, is the least a durable per-day record can cost: one row inserted
and committed per cell through the same database engine.

    .venv/bin/python bench/control_plane.py [--coverage-only] [--years 1,5,10,20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from softcopy.config import add_source, load_settings
from softcopy.db import get_engine, session_scope
from softcopy.ingestion import coverage, executors, service
from softcopy.ingestion.service.context import embed_model
from softcopy.ingestion.states import JobStatus, PlanMode, Stage
from softcopy.memory.stage import StageContext, StageResult, embed_input_digest
from softcopy.memory.tables import LedgerEntry, SourceDay
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


YEARS = (1, 5, 10, 20)  # the curve: cost per cell should stay flat as the archive grows
REPEAT = 3  # each figure is the median of this many runs


def median_time(fn) -> tuple[object, float]:
    """The value and the median wall time of REPEAT runs; the median CPU time of this
    process goes to CPU_TIMES (on a machine shared with other work, wall time counts the
    waits for a core too)."""
    runs, cpu = [], []
    for _ in range(REPEAT):
        began = time.process_time()
        runs.append(timed(fn))
        cpu.append(time.process_time() - began)
    CPU_TIMES.append(statistics.median(cpu))
    return runs[-1][0], statistics.median(s for _, s in runs)


CPU_TIMES: list[float] = []


def finished_backfill(ctx: service.Context) -> int:
    """The ledger a finished backfill of every cell leaves (each cell current), written
    straight to the table: running 65,000 no-op cells would take minutes and measure the
    runtime, not coverage. Returns the rows written."""
    model = embed_model(ctx)
    rows = []
    with session_scope(ctx.engine) as session:
        for source, day, digest in session.execute(
            select(SourceDay.source, SourceDay.day, SourceDay.digest)
        ):
            exported = f"x{digest}"
            embedded = f"v{digest}"
            for stage, given, made in (
                (Stage.export, digest, exported),
                (Stage.embed, embed_input_digest(exported, model), embedded),
                (Stage.publish, embedded, f"p{digest}"),
            ):
                rows.append((source, day, str(stage), "ok", given, made, 1, 0, END, END, "bench"))
        coverage.insert_rows(
            session,
            LedgerEntry.__table__,  # type: ignore[arg-type]
            (
                "source",
                "day",
                "stage",
                "outcome",
                "input_digest",
                "output_digest",
                "items",
                "skipped",
                "done_at",
                "attempted_at",
                "done_by",
            ),
            rows,
        )
    return len(rows)


def read_baseline(ctx: service.Context) -> float:
    """The least coverage can cost: reading the scan index's day rows and the ledger rows
    it compares once through the driver, building nothing."""

    def read() -> None:
        with ctx.engine.connect() as conn:
            days = "SELECT source, day, items, problems, digest FROM source_day"
            conn.exec_driver_sql(days).all()
            conn.exec_driver_sql(
                "SELECT source, day, stage, outcome, input_digest, output_digest, items, done_by"
                " FROM ledger"
            ).all()

    return median_time(read)[1]


def coverage_and_plans(root: Path) -> list[str]:
    """Coverage and a whole-range backfill_range plan at 1, 5, 10 and 20 years of three
    daily sources, on a fresh archive (every cell missing: the plan takes all of them) and
    after a finished backfill (every cell current: coverage compares digests, the plan
    takes the few cells a change made stale)."""
    lines = [
        "coverage and plans (median of 3; ms per 1,000 cells in brackets; baseline: reading"
        " the day and ledger rows once through the driver)",
        f"  {'years':>8} {'cells':>7} | {'fresh: coverage':>17} {'plan (all cells)':>18} |"
        f" {'done: coverage':>16} {'after a change':>16} {'plan':>12} | {'baseline':>9} |"
        " coverage/baseline fresh, done",
    ]
    for years in YEARS:
        days = round(years * 365.25)
        ctx = context(make_home(root / "curve", days))
        service.coverage(ctx)  # the first scan of the sources: not what is measured
        fresh, fresh_s = median_time(lambda: service.coverage(ctx))  # noqa: B023
        whole = backfill(ctx, days)
        made, plan_s = median_time(lambda: service.plan(ctx, options=whole))  # noqa: B023
        finished_backfill(ctx)
        done, done_s = median_time(lambda: service.coverage(ctx))  # noqa: B023
        assert {str(c.state) for c in done.cells} == {"current"}, "the ledger is not current"
        note = ctx.settings.home / "notes" / f"{END - timedelta(days=days // 2)}.md"

        def changed(note: Path = note) -> object:
            note.write_text(note.read_text() + "edited\n")  # one day of one source changes
            return service.coverage(ctx)  # noqa: B023

        _, changed_s = median_time(changed)
        redo, redo_s = median_time(lambda: service.plan(ctx, options=whole))  # noqa: B023
        base_s = read_baseline(ctx)
        n = len(fresh.cells)

        def ms(seconds: float, n: int = n) -> str:
            return f"{seconds * 1000:5.0f} ({seconds * 1e6 / n:5.1f})"

        for label, figures in (
            ("wall", (fresh_s, plan_s, done_s, changed_s, redo_s, base_s)),
            ("cpu", tuple(CPU_TIMES[-6:])),
        ):
            f_s, p_s, d_s, c_s, r_s, b_s = figures
            lines.append(
                f"  {years:>3} {label:>4} {n:>7,} | {ms(f_s):>17} {ms(p_s):>18} |"
                f" {ms(d_s):>16} {ms(c_s):>16} {r_s * 1000:5.0f} ({redo.plan.cells})"
                f" | {ms(b_s):>9} | x{f_s / b_s:4.1f} x{d_s / b_s:4.1f}"
            )
        assert made.plan.cells == n
    return lines


def main() -> None:
    global YEARS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--coverage-only", action="store_true", help="only the coverage and plan figures"
    )
    parser.add_argument(
        "--years",
        default=",".join(map(str, YEARS)),
        help="archive sizes for the coverage and plan figures, in years (default %(default)s)",
    )
    args = parser.parse_args()
    YEARS = tuple(int(y) for y in args.years.split(","))
    EXECUTORS.register("noop", lambda: executors.InlineExecutor(stage_runner=noop))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.coverage_only:  # the coverage and plan figures alone
            print("\n".join(coverage_and_plans(root)))
            return

        year = context(make_home(root, 365))
        service.coverage(year)  # first scan of the sources: not control-plane overhead
        plan, plan_s = timed(lambda: service.plan(year, options=backfill(year, 365)))
        cells = plan.plan.cells
        outcome, run_s = timed(
            lambda: service.run(
                year, plan_id=plan.plan.id, executor="noop", chunk_days=7, parallel=1
            )
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

        curve = coverage_and_plans(root)

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
    print("\n".join(curve))


if __name__ == "__main__":
    main()
