"""Real-shape benchmark: archives shaped like the ones people have, backfilled through the
control plane (service.run, inline executor), beside a naive single pass over the same
archive in the same process.

Archives (generated in seconds, deterministic):
- history: a git repository made with `git fast-import` (~12,000 commits over ~2,500 days
  across 16 years, several branches and tags, subjects and bodies of real sizes) plus
  ~100 Logseq journal files: the shape of a project's history and its owner's notes;
- large: a git repository of `--large-commits` commits at ~27 commits a day with busy days
  of 50+ (the real one is ~200,000 commits over 20 years; the default is smaller so that
  the default run stays within a few minutes on a 2-core machine);
- mail: a 20,000-message mbox over 10 years; it also measures an incremental rescan after
  appending ten messages (bytes and messages read vs the full scan).

For each archive, in its own child process (so its peak memory is its own): cells, items,
seconds, ms per cell, items/s, peak RSS, and the naive pass (parse everything with the
source kinds' own parsers, hash-embed, insert into FTS5 in one transaction: no control
plane, no per-day artifacts) with the ratio backfill / naive.

    .venv/bin/python bench/real_shape.py                      # history, large, mail
    .venv/bin/python bench/real_shape.py --only history --years 1 5 20   # cost-per-cell curve
    .venv/bin/python bench/real_shape.py --only large --large-commits 200000
    .venv/bin/python bench/real_shape.py --only mail --mail-messages 4000
    .venv/bin/python bench/real_shape.py --only history --profile /tmp/history.prof
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

END = date(2026, 10, 31)
WORDS = (  # noqa: SIM905 (a sentence reads better than a list of 59 strings)
    "fix add remove update refactor test docs build release merge bump support handle "
    "parser index cache worker queue lease schema migration config search embed export "
    "publish ledger checkpoint api server client notebook kernel dashboard coverage plan "
    "error message crash leak timeout retry encoding unicode path windows linux macos "
    "typo readme changelog license ci lint format style dependency version deprecate"
).split()
NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Ken Thompson", "Barbara Liskov")
BRANCHES = ("main", "develop", "release/1.x", "release/2.x", "feature/search", "gh-pages")


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# --- generators -------------------------------------------------------------------------


@dataclass(frozen=True)
class GitShape:
    commits: int
    days: int  # distinct days with commits
    span_days: int  # calendar days the history covers
    busy_share: float = 0.0  # share of days that are busy (50-120 commits)


def commit_days(shape: GitShape, rng: random.Random) -> list[tuple[date, int]]:
    """(day, commits) for `shape.days` distinct days ending at END, summing to `commits`:
    most days a few commits (a heavy tail), `busy_share` of them 50+."""
    span = max(shape.span_days, shape.days)
    chosen = sorted(rng.sample(range(span), shape.days))
    days = [END - timedelta(days=span - 1 - offset) for offset in chosen]
    busy = set(rng.sample(range(len(days)), int(len(days) * shape.busy_share)))
    weights = [
        rng.randint(50, 120) if i in busy else min(40, int(rng.paretovariate(1.6)))
        for i in range(len(days))
    ]
    total = sum(weights)
    counts = [max(1, round(w * shape.commits / total)) for w in weights]
    drift = shape.commits - sum(counts)  # make the sum exact, a commit at a time
    i = 0
    while drift:
        j = i % len(counts)
        if drift > 0:
            counts[j] += 1
            drift -= 1
        elif counts[j] > 1:
            counts[j] -= 1
            drift += 1
        i += 1
    return list(zip(days, counts, strict=True))


def make_git(path: Path, shape: GitShape, seed: int = 1) -> dict[str, int]:
    """A repository of `shape` made with one `git fast-import`: empty-tree commits on
    several branches (each a line of history forked from main), a tag every ~400 commits."""
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    chunks: list[bytes] = []
    heads: dict[str, int] = {}
    mark = 0
    tags = 0
    for day, count in commit_days(shape, rng):
        base = datetime(day.year, day.month, day.day, 7, tzinfo=UTC).timestamp()
        stamps = sorted(base + rng.randrange(16 * 3600) for _ in range(count))
        for stamp in stamps:
            mark += 1
            branch = "main" if rng.random() < 0.8 else rng.choice(BRANCHES[1:])
            subject = f"{rng.choice(WORDS).capitalize()} {words(rng, rng.randint(3, 9))}"
            body = ""
            if rng.random() < 0.45:
                lines = [words(rng, rng.randint(6, 11)) for _ in range(rng.randint(1, 12))]
                body = "\n\n" + "\n".join(lines)
            message = f"{subject}{body}\n".encode()
            name = rng.choice(NAMES)
            who = f"{name} <{name.split()[0].lower()}@example.org> {int(stamp)} +0000"
            parent = heads.get(branch, heads.get("main"))
            chunk = (
                f"commit refs/heads/{branch}\nmark :{mark}\nauthor {who}\ncommitter {who}\n"
                f"data {len(message)}\n"
            ).encode() + message
            if parent is not None:
                chunk += f"from :{parent}\n".encode()
            chunks.append(chunk + b"\n")
            heads[branch] = mark
            if branch == "main" and mark // 400 > tags:
                tags += 1
                chunks.append(f"reset refs/tags/v{tags}.0\nfrom :{mark}\n\n".encode())
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"],
        input=b"".join(chunks),
        check=True,
    )
    return {"commits": mark, "branches": len(heads), "tags": tags}


def make_journals(folder: Path, count: int, span_days: int, seed: int = 2) -> int:
    """Logseq journal pages: `journals/YYYY_MM_DD.md`, outlines of a few bullets."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for offset in sorted(rng.sample(range(span_days), count)):
        day = END - timedelta(days=span_days - 1 - offset)
        bullets = [f"- {words(rng, rng.randint(4, 16))}" for _ in range(rng.randint(2, 9))]
        bullets += [
            f"\t- [[{rng.choice(WORDS)}]] {words(rng, 6)}" for _ in range(rng.randint(0, 3))
        ]
        (folder / f"{day:%Y_%m_%d}.md").write_text("\n".join(bullets) + "\n")
    return count


def mbox_message(rng: random.Random, n: int, ts: datetime) -> str:
    body = "\n".join(words(rng, rng.randint(8, 14)) for _ in range(rng.randint(3, 25)))
    return (
        f"From sender{n % 97}@example.org {ts:%a %b %d %H:%M:%S %Y}\n"
        f"From: Sender {n % 97} <sender{n % 97}@example.org>\n"
        f"To: me@example.org\nSubject: {words(rng, rng.randint(3, 8))}\n"
        f"Date: {format_datetime(ts)}\nMessage-ID: <{n}@real-shape>\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{body}\n\n"
    )


def make_mbox(path: Path, messages: int, span_days: int, seed: int = 3, first: int = 0) -> int:
    """`messages` mails spread over `span_days` days ending at END, in date order."""
    rng = random.Random(seed)
    start = datetime(END.year, END.month, END.day, tzinfo=UTC) - timedelta(days=span_days - 1)
    stamps = sorted(rng.randrange(span_days * 86400) for _ in range(messages))
    with path.open("a") as out:
        for n, stamp in enumerate(stamps, start=first):
            out.write(mbox_message(rng, n, start + timedelta(seconds=stamp)))
    return messages


def history_shape(years: int) -> GitShape:
    """The 16-year history (12,114 commits over 2,481 days) scaled to `years`."""
    return GitShape(
        commits=max(1, round(12_114 * years / 16)),
        days=max(1, round(2_481 * years / 16)),
        span_days=years * 365,
    )


def large_shape(commits: int) -> GitShape:
    """About 27 commits a day (203,352 over 7,548 days), a tenth of the days busy."""
    days = max(1, round(commits * 7_548 / 203_352))
    return GitShape(
        commits=commits, days=days, span_days=round(days * 20 * 365 / 7_548), busy_share=0.1
    )


MAIL_MESSAGES = 20_000
PARALLEL: int | None = None  # steps at once (None: the settings' default, one per core)
EXECUTORS: list[str] = ["inline"]  # each backfills its own copy of the archive, in turn
ROUNDS = 1


def generate(home: Path, archive: str, years: int, large_commits: int) -> dict[str, int]:
    """Make one archive's sources under `home` and configure them."""
    from softcopy.config import add_source

    src = home / "sources"
    src.mkdir(parents=True)
    made: dict[str, int] = {}
    if archive == "history":
        made |= make_git(src / "repo", history_shape(years))
        made["journals"] = make_journals(
            src / "graph" / "journals", max(1, round(91 * years / 16)), years * 365
        )
        add_source(home, name="repo", kind="git", path="sources/repo")
        add_source(home, name="journal", kind="notes", path="sources/graph")
    elif archive == "large":
        made |= make_git(src / "big", large_shape(large_commits))
        add_source(home, name="big", kind="git", path="sources/big")
    elif archive == "mail":
        made["messages"] = make_mbox(src / "mail.mbox", MAIL_MESSAGES, 3_650)
        add_source(home, name="mail", kind="mbox", path="sources/mail.mbox")
    else:
        raise SystemExit(f"unknown archive {archive!r}")
    return made


# --- the naive pass ---------------------------------------------------------------------


# --- one archive, in a child process ----------------------------------------------------


def backfill(home: Path, executor: str, profile: str | None) -> dict[str, Any]:
    """One backfill of the archive configured under `home` through service.run."""
    from softcopy.config import load_settings
    from softcopy.db import get_engine
    from softcopy.ingestion import service
    from softcopy.ingestion.states import JobStatus, PlanMode
    from softcopy.memory import index

    settings = load_settings(home, env={"SOFTCOPY_TIMEZONE": "UTC"})
    noon = datetime(END.year, END.month, END.day, 12, tzinfo=UTC) + timedelta(days=1)
    ctx = service.Context(
        settings=settings, engine=get_engine(settings.database_url), clock=lambda: noon
    )
    options = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=date(1990, 1, 1), range_end_day=END
    )
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    began, cpu, tree = time.perf_counter(), time.process_time(), tree_cpu()
    outcome = service.run(ctx, options=options, executor=executor, parallel=PARALLEL)
    run_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
    tree_s = tree_cpu() - tree
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    assert outcome.job is not None, "nothing to do"
    assert outcome.job.job.status is JobStatus.succeeded, outcome.job.job.error
    items = index.count(settings.index_path)
    index.close_all()
    steps = len(service.show_job(ctx, job_id=outcome.job.job.id).steps)  # type: ignore[arg-type]
    return {
        "cells": outcome.plan.cells,
        "steps": steps,
        "items": items,
        "run_s": run_s,
        "cpu_s": cpu_s,  # the worker's process: its threads, not its step processes or kernels
        # and its children that ended: the kernels, not the inline executor's step processes
        # (the forkserver's children): the whole run's cost only at --parallel 1
        "tree_s": tree_s,
    }


def tree_cpu() -> float:
    """CPU seconds of this process and of its children that ended (kernels, git)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(  # type: ignore[type-arg]
    archive: str, years: int, large_commits: int, profile: str | None
) -> dict:
    """Generate the archive once; backfill a fresh copy of it with each of EXECUTORS in
    turn, ROUNDS times (alternating, so that the load falls on all alike); the naive pass."""
    import os
    import shutil

    from softcopy.config import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        made_home = Path(tmp) / "made"
        began = time.perf_counter()
        made = generate(made_home, archive, years, large_commits)
        generate_s = time.perf_counter() - began
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in EXECUTORS}
        loads = [os.getloadavg()[0]]
        for round_ in range(ROUNDS):
            for name in EXECUTORS:
                home = Path(tmp) / f"{name}-{round_}"
                shutil.copytree(made_home, home, symlinks=True)
                runs[name].append(backfill(home, name, profile and f"{profile}.{name}"))
                loads.append(os.getloadavg()[0])
                shutil.rmtree(home)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first = runs[EXECUTORS[0]][0]
        settings = load_settings(made_home, env={"SOFTCOPY_TIMEZONE": "UTC"})
        from naive import naive_pass  # bench/naive.py, beside this script

        # three naive passes, their median the baseline: one pass moved x4.5 with the load
        # (0.65-3.06 s for the 16-year history), far more than the backfill beside it
        passes = [naive_pass(settings, Path(tmp)) for _ in range(3)]
        naive_n, naive_s = passes[0][0], statistics.median(s for _, s in passes)
        figures = {
            "archive": archive,
            "years": years,
            "made": made,
            "generate_s": generate_s,
            "cells": first["cells"],
            "steps": first["steps"],
            "items": first["items"],
            "run_s": first["run_s"],
            "runs": {name: [r["run_s"] for r in got] for name, got in runs.items()},
            "cpu": {name: [r["cpu_s"] for r in got] for name, got in runs.items()},
            "tree": {name: [r["tree_s"] for r in got] for name, got in runs.items()},
            "loads": loads,
            "peak_mb": peak,
            "naive_items": naive_n,
            "naive_s": naive_s,
            "naive_range": [min(s for _, s in passes), max(s for _, s in passes)],
        }
        if archive == "mail":
            figures |= rescan_figures(settings, made_home)
        return figures


def rescan_figures(settings, home: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Catch-up scans after appending 10, then 100, then 1,000 messages to the mbox: what
    each scan parsed (bytes, messages) and digested, and its time, beside a full scan."""
    from softcopy.db import get_engine, session_scope
    from softcopy.memory import scan
    from softcopy.memory.sources import open_source

    path = home / "sources" / "mail.mbox"
    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:  # the backfills ran on copies: scan this home once
        scan.refresh(session, open_source(settings.source("mail"), settings.timezone))
    steps = []
    first = 1_000_000
    for count in (10, 100, 1_000):
        before = path.stat().st_size
        make_mbox(path, count, 1, seed=count, first=first)
        first += count
        source = open_source(settings.source("mail"), settings.timezone)
        with session_scope(engine) as session:
            began = time.perf_counter()
            scan.refresh(session, source)
            seconds = time.perf_counter() - began
        stats = getattr(source, "read_stats", {})
        steps.append(
            {
                "appended_messages": count,
                "appended_bytes": path.stat().st_size - before,
                "seconds": seconds,
                "parsed_bytes": stats.get("bytes", -1),
                "parsed_messages": stats.get("records", -1),
                "digested_bytes": stats.get("digested", -1),
            }
        )
    full = open_source(settings.source("mail"), settings.timezone)
    began = time.perf_counter()
    full.scan_unit("mail.mbox")
    full_s = time.perf_counter() - began
    full_stats = getattr(full, "read_stats", {})
    return {
        "rescans": steps,
        "file_bytes": path.stat().st_size,
        "full_scan_s": full_s,
        "full_scan_bytes": full_stats.get("bytes", -1),
        "full_scan_messages": full_stats.get("records", -1),
    }


# --- the driver -------------------------------------------------------------------------


def child(archive: str, years: int, large_commits: int, profile: str | None) -> dict:  # type: ignore[type-arg]
    command = [sys.executable, __file__, "--child", archive, "--years", str(years)]
    command += ["--large-commits", str(large_commits), "--mail-messages", str(MAIL_MESSAGES)]
    if PARALLEL is not None:
        command += ["--parallel", str(PARALLEL)]
    command += ["--executors", *EXECUTORS, "--rounds", str(ROUNDS)]
    if profile:
        command += ["--profile", profile]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(rows: list[dict]) -> None:  # type: ignore[type-arg]
    print(
        f"{'archive':<16}{'cells':>8}{'items':>9}{'seconds':>9}{'ms/cell':>9}{'items/s':>9}"
        f"{'peak MB':>9}{'naive s':>9}{'naive it/s':>11}{'ratio':>8}"
    )
    for f in rows:
        name = f"{f['archive']} {f['years']}y" if f["archive"] == "history" else f["archive"]
        print(
            f"{name:<16}{f['cells']:>8}{f['items']:>9}{f['run_s']:>9.2f}"
            f"{f['run_s'] / max(f['cells'], 1) * 1000:>9.2f}{f['items'] / f['run_s']:>9,.0f}"
            f"{f['peak_mb']:>9.0f}{f['naive_s']:>9.2f}{f['naive_items'] / f['naive_s']:>11,.0f}"
            f"{f['run_s'] / f['naive_s']:>7.0f}x"
        )
    for f in rows:
        print(f"  {f['archive']}: generated {f['made']} in {f['generate_s']:.1f} s")
        low, high = f["naive_range"]
        print(f"  naive pass: median of 3 {f['naive_s']:.2f} s (range {low:.2f}-{high:.2f})")
        runs = f.get("runs", {})
        base = statistics.median(next(iter(runs.values()))) if runs else 0.0
        for name, seconds in runs.items():
            median = statistics.median(seconds)
            cpu = statistics.median(f["cpu"][name])
            tree = statistics.median(f["tree"][name])
            base_tree = statistics.median(next(iter(f["tree"].values())))
            print(
                f"  {name:<10} {len(seconds)} run(s): median {median:7.2f} s"
                f" (range {min(seconds):.2f}-{max(seconds):.2f}),"
                f" {median / max(f['steps'], 1) * 1000:6.1f} ms/step over {f['steps']} steps,"
                f" x{median / base:.2f} the first executor's median;"
                f" the worker's CPU {cpu:.2f} s ({cpu / max(f['steps'], 1) * 1000:.1f} ms/step);"
                f" CPU with its kernels (not step processes) {tree:.2f} s, x{tree / base_tree:.2f}"
            )
        if runs:
            print(f"  load average at each run's end: {', '.join(f'{x:.1f}' for x in f['loads'])}")
        for r in f.get("rescans", []):
            print(
                f"  mail rescan after appending {r['appended_messages']:>5} messages "
                f"({r['appended_bytes']:>9,} bytes): parsed {r['parsed_bytes']:>9,} bytes, "
                f"{r['parsed_messages']:>5} messages, digested {r['digested_bytes']:>11,} bytes,"
                f" {r['seconds'] * 1000:6.0f} ms"
            )
        if "full_scan_s" in f:
            print(
                f"  mail full scan of the same file ({f['file_bytes']:,} bytes): parsed "
                f"{f['full_scan_bytes']:,} bytes, {f['full_scan_messages']} messages, "
                f"{f['full_scan_s'] * 1000:.0f} ms"
            )


def main() -> None:
    global MAIL_MESSAGES, PARALLEL, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=["history", "large", "mail"])
    parser.add_argument("--years", nargs="*", type=int, default=[16], help="history's length")
    parser.add_argument("--large-commits", type=int, default=30_000)
    parser.add_argument("--mail-messages", type=int, default=MAIL_MESSAGES)
    parser.add_argument("--profile", help="write a cProfile of the backfill to this file")
    parser.add_argument("--parallel", type=int, help="steps at once (default: one per core)")
    parser.add_argument(
        "--executors",
        nargs="*",
        default=["inline"],
        help="each runs the backfill; the first is the others' baseline (e.g. inline notebook)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="backfills per executor, alternating")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    MAIL_MESSAGES = args.mail_messages
    PARALLEL = args.parallel
    EXECUTORS[:] = args.executors
    ROUNDS = args.rounds
    if args.child:
        figures = measure(args.child, args.years[0], args.large_commits, args.profile)
        print(json.dumps(figures))
        return
    rows = []
    for archive in args.only:
        for years in args.years if archive == "history" else [args.years[0]]:
            rows.append(child(archive, years, args.large_commits, args.profile))
    report(rows)


if __name__ == "__main__":
    main()
