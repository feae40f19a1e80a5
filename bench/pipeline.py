"""Pipeline benchmark: export, embed and publish a generated archive of >= 100,000 items
over three years, with the hashing embedder, on SQLite.

Prints items/s per stage and end to end, and peak memory. Each size runs in its own child
process (so peak RSS is that run's alone); the one-year run is the baseline the three-year
run is compared with: throughput should hold and memory should stay flat as days grow.
Each child then indexes the same archive twice by a naive single pass (parse everything
with the source kinds' parsers, hash-embed, one FTS5 insert transaction; no ledger, no
per-day artifacts): the ratio stages / naive is printed as the range over the two, beside
the load average.

    .venv/bin/python bench/pipeline.py [--items 100000] [--years 3]
    .venv/bin/python bench/pipeline.py --parallel-check [--items 32000] [--chunk-days 5] \
        [--rounds 3]

`--parallel-check`: a CPU-bound job through the control plane (service.run, inline
executor) — the hashing embed of a dense archive (--items chat messages over 30 days, a
thirtieth of them each day, in steps of --chunk-days days) — with 1 step at a time, then
with 2 (the second slot in a step process), alternating --rounds times, each on a cleared
embedding cache, beside the machine's load average and what two processes get on it in
the same run (`cpu_ceiling`: pure-Python work in 2 processes vs 1); prints each job's step
timeline (from its steps' rows) and the speed-up of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

WORDS = [
    "standup",
    "release",
    "plan",
    "staging",
    "rollout",
    "budget",
    "review",
    "hiring",
    "loop",
    "retro",
    "incident",
    "queue",
    "cache",
    "design",
    "proposal",
    "worker",
    "api",
    "server",
    "reading",
    "notes",
    "garden",
    "travel",
    "conference",
    "slides",
    "branch",
    "deploy",
    "metrics",
    "latency",
    "dashboard",
    "customer",
    "roadmap",
    "quarter",
    "goals",
    "sync",
    "pairing",
    "test",
    "flaky",
    "migration",
    "schema",
    "index",
    "search",
    "vector",
    "embed",
    "publish",
    "export",
    "ledger",
    "checkpoint",
    "lease",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def generate(home: Path, items: int, years: int) -> dict[str, int]:
    """60% chat (JSONL), 25% mail (mbox), 15% notes, spread over `years` * 365 days."""
    from softcopy.config import add_source

    rng = random.Random(42)
    end = date(2026, 10, 31)
    days = years * 365
    start = end - timedelta(days=days - 1)

    def when() -> datetime:
        day = start + timedelta(days=rng.randrange(days))
        return datetime(
            day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=UTC
        )

    counts = {"chat": int(items * 0.6), "mail": int(items * 0.25)}
    counts["notes"] = items - counts["chat"] - counts["mail"]
    src = home / "sources"
    src.mkdir(parents=True)
    with (src / "chat.jsonl").open("w") as out:
        for n in range(counts["chat"]):
            record = {"id": f"m{n}", "ts": when().isoformat(), "text": sentence(rng, 25)}
            out.write(json.dumps(record) + "\n")
    with (src / "mail.mbox").open("w") as out:
        for n in range(counts["mail"]):
            msg = EmailMessage()
            msg["From"] = "a@example.org"
            msg["To"] = "me@example.org"
            msg["Subject"] = sentence(rng, 5)
            ts = when()
            msg["Date"] = format_datetime(ts)
            msg["Message-ID"] = f"<{n}@bench>"
            msg.set_content(sentence(rng, 60))
            out.write(f"From a@example.org {ts:%a %b %d %H:%M:%S %Y}\n{msg.as_string()}\n")
    notes = src / "notes"
    notes.mkdir()
    for n in range(counts["notes"]):
        day = when().date()
        (notes / f"{day.isoformat()}-{n}.md").write_text(
            f"# {sentence(rng, 4)}\n\n{sentence(rng, 80)}\n"
        )
    add_source(home, name="chat", kind="jsonl", path="sources/chat.jsonl")
    add_source(home, name="mail", kind="mbox", path="sources/mail.mbox")
    add_source(home, name="notes", kind="notes", path="sources/notes")
    return counts


def measure(items: int, years: int) -> dict[str, float]:
    """Generate, then time each stage over every source (run in a child process), then two
    naive passes over the same archive (its baseline: the two give its range)."""
    from softcopy.config import load_settings
    from softcopy.db import get_engine
    from softcopy.ingestion.states import Stage
    from softcopy.memory.runner import run_stages

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        generate(home, items, years)
        settings = load_settings(home, env={})
        engine = get_engine(settings.database_url)
        figures: dict[str, float] = {"items": items, "days": years * 365}
        total = 0.0
        for stage in Stage:
            began = time.perf_counter()
            summary = run_stages(
                settings=settings, engine=engine, stages=[stage], sources=["chat", "mail", "notes"]
            )
            seconds = time.perf_counter() - began
            assert summary.ok, summary.failures[:3]
            done = sum(r.items for r in summary.results)
            assert done == items, (stage, done, items)
            figures[f"{stage}_s"] = seconds
            total += seconds
        figures["total_s"] = total
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # after the stages, so that the peak above is theirs (the naive pass holds everything)
        from naive import naive_pass  # bench/naive.py, beside this script

        naive = [naive_pass(settings, home), naive_pass(settings, home)]
        assert all(n == items for n, _ in naive), (naive, items)
        figures["naive_s"] = [s for _, s in naive]  # type: ignore[assignment]
        figures["load"] = os.getloadavg()[0]
        return figures


def timeline(view) -> str:  # type: ignore[no-untyped-def]
    """Where a job's time went, from its steps' rows: the steps' own time (summed: what one
    slot would need), the first step's start and the last one's end from the job's."""
    job, steps = view.job, [s.step for s in view.steps]
    began = [s.started_at for s in steps if s.started_at]
    ended = [s.finished_at for s in steps if s.finished_at]
    busy = sum((s.finished_at - s.started_at).total_seconds() for s in steps if s.finished_at)
    wall = (max(ended) - min(began)).total_seconds()
    slowest = max((s.finished_at - s.started_at).total_seconds() for s in steps if s.finished_at)
    lead = (min(began) - job.started_at).total_seconds()
    tail = (job.finished_at - max(ended)).total_seconds()
    return (
        f"{len(steps)} steps: {busy:.2f} s of step time in {wall:.2f} s from the first step's"
        f" start to the last one's end (x{busy / wall:.2f} at once), slowest step"
        f" {slowest:.2f} s; job start to first step {lead:.2f} s, last step to job end"
        f" {tail:.2f} s; steps (start s, seconds): "
        + ", ".join(
            f"({(s.started_at - job.started_at).total_seconds():.1f},"
            f" {(s.finished_at - s.started_at).total_seconds():.2f})"
            for s in sorted(steps, key=lambda s: s.started_at)
            if s.started_at and s.finished_at
        )
    )


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def cpu_ceiling(n: int = 3_000_000) -> float:
    """What two processes get on this machine now: the same pure-Python work (four pieces)
    in 2 processes vs 1, as a speed-up; on two idle cores about x2."""
    import multiprocessing

    seconds = {}
    for procs in (1, 2):
        began = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            pool.map(_spin, [n] * 4)
        seconds[procs] = time.perf_counter() - began
    return seconds[1] / seconds[2]


def parallel_check(items: int, chunk_days: int, rounds: int = 1) -> None:
    """Embed the same dense archive with 1, then 2 parallel steps; print both and the ratio."""
    import os

    from softcopy.config import add_source, load_settings
    from softcopy.db import get_engine, session_scope
    from softcopy.ingestion import service
    from softcopy.ingestion.states import JobStatus, PlanMode, Stage
    from softcopy.memory import cache

    rng = random.Random(7)
    end = date(2026, 10, 31)
    days = 30
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with (home / "chat.jsonl").open("w") as out:
            for n in range(items):
                day = end - timedelta(days=n % days)
                ts = datetime(day.year, day.month, day.day, n % 24, tzinfo=UTC)
                text = sentence(rng, 60)
                out.write(json.dumps({"id": f"m{n}", "ts": ts.isoformat(), "text": text}) + "\n")
        add_source(home, name="chat", kind="jsonl", path="chat.jsonl")
        settings = load_settings(home, env={})
        ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
        window = {"range_start_day": end - timedelta(days=days - 1), "range_end_day": end}
        exported = service.run(
            ctx,
            options=service.PlanOptions(
                mode=PlanMode.backfill_range, stages=[Stage.export], **window
            ),
            parallel=2,  # also starts the forkserver the step processes come from
        )
        assert exported.job is not None and exported.job.job.status is JobStatus.succeeded
        timings: dict[int, list[float]] = {}
        ceilings = []
        for parallel in (1, 2) * rounds:  # alternating: the load falls on both alike
            if parallel == 1:
                ceilings.append(cpu_ceiling())
                print(f"machine: 2 processes of pure-Python work vs 1: x{ceilings[-1]:.2f}")
            with session_scope(ctx.engine) as session:
                cache.clear(session)  # every run embeds every item
            options = service.PlanOptions(
                mode=PlanMode.backfill_range, stages=[Stage.embed], force=True, **window
            )
            began = time.perf_counter()
            outcome = service.run(ctx, options=options, parallel=parallel, chunk_days=chunk_days)
            seconds = time.perf_counter() - began
            assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
            timings.setdefault(parallel, [])
            timings[parallel].append(seconds)
            print(
                f"embed {items:,} items over {days} days (steps of {chunk_days} days),"
                f" parallel {parallel}:"
                f" {seconds:6.2f} s = {items / seconds:9,.0f} items/s"
                f"   (load average {os.getloadavg()[0]:.1f})"
            )
            print("  " + timeline(outcome.job))
    one, two = statistics.median(timings[1]), statistics.median(timings[2])
    print(
        f"parallel 1 median {one:.2f} s ({min(timings[1]):.2f}-{max(timings[1]):.2f}),"
        f" parallel 2 median {two:.2f} s ({min(timings[2]):.2f}-{max(timings[2]):.2f}):"
        f" speed-up x{one / two:.2f} (round by round:"
        f" {', '.join(f'x{a / b:.2f}' for a, b in zip(timings[1], timings[2], strict=True))});"
        f" the machine's ceiling in the same run: x{statistics.median(ceilings):.2f}"
        f" ({min(ceilings):.2f}-{max(ceilings):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parallel-check", action="store_true", help="see the docstring")
    parser.add_argument("--chunk-days", type=int, default=5, help="--parallel-check's step size")
    parser.add_argument("--rounds", type=int, default=1, help="--parallel-check's runs of each")
    args = parser.parse_args()
    if args.parallel_check:
        parallel_check(
            args.items if args.items != 100_000 else 32_000, args.chunk_days, args.rounds
        )
        return
    if args.child:
        print(json.dumps(measure(args.items, args.years)))
        return

    def child(items: int, years: int) -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--items", str(items), "--years", str(years)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    baseline = child(args.items // args.years, 1)
    full = child(args.items, args.years)
    print(
        f"{'run':<22}{'items':>9}{'days':>6}{'export/s':>11}{'embed/s':>10}{'publish/s':>11}"
        f"{'end-to-end/s':>14}{'peak MB':>9}{'naive/s':>17}{'x naive':>13}{'load':>6}"
    )
    for name, f in (("baseline (1 year)", baseline), (f"full ({args.years} years)", full)):
        rate = {s: f["items"] / f[f"{s}_s"] for s in ("export", "embed", "publish")}
        print(
            f"{name:<22}{int(f['items']):>9}{int(f['days']):>6}{rate['export']:>11,.0f}"
            f"{rate['embed']:>10,.0f}{rate['publish']:>11,.0f}"
            f"{f['items'] / f['total_s']:>14,.0f}{f['peak_rss_mb']:>9,.0f}"
            f"{f['items'] / max(f['naive_s']):>8,.0f}-{f['items'] / min(f['naive_s']):<8,.0f}"
            f"{f['total_s'] / max(f['naive_s']):>6.1f}-{f['total_s'] / min(f['naive_s']):<6.1f}"
            f"{f['load']:>6.1f}"
        )
    speed = (full["items"] / full["total_s"]) / (baseline["items"] / baseline["total_s"])
    memory = full["peak_rss_mb"] / baseline["peak_rss_mb"]
    print(
        f"full/baseline: end-to-end items/s x{speed:.2f}, peak memory x{memory:.2f}, "
        f"for x{full['items'] / baseline['items']:.1f} the items over "
        f"x{full['days'] / baseline['days']:.0f} the days"
    )


if __name__ == "__main__":
    main()
