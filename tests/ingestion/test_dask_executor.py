"""The dask executor on a real `distributed.LocalCluster` of worker processes, with the job's
state in PostgreSQL: the same index and artifacts as inline, a worker SIGKILLed mid-step, the
coordinator SIGKILLed and its job resumed from another process, cancel within a day's work,
and the guard rails (an unreachable scheduler, state in SQLite) before anything is written."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from softcopy.config import load_settings
from softcopy.db import get_engine, utcnow
from softcopy.demo import build_demo
from softcopy.ingestion import dask_executor, service
from softcopy.ingestion.dask_executor import DaskExecutor
from softcopy.ingestion.models import Checkpoint, IngestionJob, IngestionPlan, JobStep
from softcopy.ingestion.states import JobStatus, PlanMode, Stage
from softcopy.memory import index
from softcopy.memory.pipeline import run_stage
from softcopy.registry import EXECUTORS
from tests.conftest import DEMO_TODAY, PG_URL

distributed = pytest.importorskip("distributed", reason="the [dask] extra is not installed")

needs_pg = pytest.mark.skipif(
    not PG_URL, reason="the dask executor needs PostgreSQL: set SOFTCOPY_TEST_DATABASE_URL"
)
on_pg = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

DAYS = 10
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range,
    range_start_day=DEMO_TODAY - timedelta(days=DAYS - 1),
    range_end_day=DEMO_TODAY,
)
# the slow jobs: one source's export and embed, two steps of ten days
SLOW = dataclasses.replace(BACKFILL, sources=["chat"], stages=[Stage.export, Stage.embed])
DAY_SECONDS = 0.3  # a slow day, so that a kill or a cancel lands in the middle of a step


def slow_stage(ctx, stage, source, day, log: str | None = None):  # type: ignore[no-untyped-def]
    """The real stage, after a pause (imported by reference on the Dask workers); with a
    `log`, it appends when each day's work began."""
    if log:
        with open(log, "a") as out:
            out.write(f"{stage} {source} {day} {time.time()}\n")
    time.sleep(DAY_SECONDS)
    return run_stage(ctx, stage, source, day)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=4,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
    ) as local:
        yield local
    dask_executor.close_clients()


@pytest.fixture
def dask_ctx(
    cluster: distributed.LocalCluster, home: Path, monkeypatch: pytest.MonkeyPatch
) -> service.Context:
    """A ten-day demo (three sources) whose jobs run on the cluster, state in PostgreSQL."""
    build_demo(home, days=DAYS, today=DEMO_TODAY)
    monkeypatch.setenv("SOFTCOPY_DASK_SCHEDULER", cluster.scheduler_address)
    ctx = service.open_context(home)
    ctx.clock = lambda: datetime.now(UTC).replace(
        year=DEMO_TODAY.year, month=DEMO_TODAY.month, day=DEMO_TODAY.day
    )
    return ctx


def digests(home: Path) -> dict[str, str]:
    """Every artifact (relative path → sha256) and every index row, of a home."""
    out = {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("export", "vectors")
        for path in sorted((home / folder).rglob("*"))
        if path.is_file()
    }
    with index.connect(home / "index.db") as conn:
        for row in conn.execute("SELECT source, day, item_id, content_hash FROM docs"):
            out[f"index:{row[0]}:{row[1]}:{row[2]}"] = row[3]
    return out


def checkpoint_rows(ctx: service.Context, job_id: int) -> list[Checkpoint]:
    with Session(ctx.engine) as session:
        return list(session.exec(select(Checkpoint).where(Checkpoint.job_id == job_id)))


def steps_of(ctx: service.Context, job_id: int) -> list[JobStep]:
    with Session(ctx.engine) as session:
        return list(session.exec(select(JobStep).where(JobStep.job_id == job_id)))


def queue(ctx: service.Context, chunk_days: int = DAYS) -> int:
    outcome = service.enqueue(ctx, options=SLOW, executor="dask", chunk_days=chunk_days)
    assert outcome.job is not None and outcome.job.job.id is not None
    return outcome.job.job.id


def run_in_thread(ctx: service.Context, job_id: int) -> threading.Thread:
    thread = threading.Thread(
        target=service.work, args=(ctx,), kwargs={"once": True, "job_id": job_id}
    )
    thread.start()
    return thread


def wait_for(condition, what: str, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@needs_pg
@on_pg
def test_a_dask_job_leaves_the_same_index_and_artifacts_as_inline(
    dask_ctx: service.Context, tmp_path: Path
) -> None:
    reference = tmp_path / "inline"
    build_demo(reference, days=DAYS, today=DEMO_TODAY)
    settings = load_settings(reference, env={})
    inline = service.Context(settings=settings, engine=get_engine(settings.database_url))
    inline.clock = dask_ctx.clock
    assert service.run(inline, options=BACKFILL).job.job.status is JobStatus.succeeded  # type: ignore[union-attr]

    outcome = service.run(dask_ctx, options=BACKFILL, executor="dask", chunk_days=5)
    assert outcome.job is not None
    job = outcome.job.job
    assert job.status is JobStatus.succeeded, job.error
    assert len(dask_ctx.settings.sources) == 3
    assert digests(dask_ctx.settings.home) == digests(reference)
    assert service.verify(dask_ctx, job_id=job.id).ok  # type: ignore[arg-type]

    # which worker ran each step: export and embed on the cluster's workers (several of
    # them), publish here, where the SQLite index file lives; and the dashboard's link
    steps = steps_of(dask_ctx, job.id)  # type: ignore[arg-type]
    workers = dask_ctx_workers(dask_ctx)
    fanned = {s.worker for s in steps if s.stage is not Stage.publish}
    assert fanned <= workers and len(fanned) >= 2, (fanned, workers)
    assert all("the job's machine" in (s.worker or "") for s in steps if s.stage is Stage.publish)
    assert job.dask_dashboard and job.dask_dashboard.startswith("http://127.0.0.1:")


def dask_ctx_workers(ctx: service.Context) -> set[str]:
    client = dask_executor.client_for(ctx.settings.dask_scheduler)  # type: ignore[arg-type]
    return set(client.scheduler_info()["workers"])


@needs_pg
@on_pg
def test_sigkill_a_dask_worker_mid_step_loses_and_repeats_no_day(
    dask_ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(EXECUTORS, "dask", lambda: DaskExecutor(stage_runner=slow_stage))
    job_id = queue(dask_ctx)
    first = min(steps_of(dask_ctx, job_id), key=lambda s: s.ordinal)
    thread = run_in_thread(dask_ctx, job_id)

    def running_with_a_day_done() -> bool:
        rows = [c for c in checkpoint_rows(dask_ctx, job_id) if c.step_id == first.id]
        step = next(s for s in steps_of(dask_ctx, job_id) if s.id == first.id)
        return step.worker is not None and 1 <= len(rows) < len(step.days)

    wait_for(running_with_a_day_done, "the first step to be half done")
    victim = next(s for s in steps_of(dask_ctx, job_id) if s.id == first.id).worker
    client = dask_executor.client_for(dask_ctx.settings.dask_scheduler)  # type: ignore[arg-type]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker process; the task moves
    thread.join(timeout=120)
    assert not thread.is_alive()

    view = service.show_job(dask_ctx, job_id=job_id)
    assert view.job.status is JobStatus.succeeded, view.job.error
    after = next(s for s in steps_of(dask_ctx, job_id) if s.id == first.id)
    assert after.worker != victim  # the step finished elsewhere
    rows = checkpoint_rows(dask_ctx, job_id)
    cells = [(c.stage, c.source, c.day) for c in rows]
    assert len(cells) == len(set(cells)) == view.job.cells_total  # none lost, none twice
    assert service.verify(dask_ctx, job_id=job_id).ok


@needs_pg
@on_pg
def test_cancel_lands_within_one_days_work_per_running_task(
    dask_ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(EXECUTORS, "dask", lambda: DaskExecutor(stage_runner=slow_stage))
    job_id = queue(dask_ctx)
    thread = run_in_thread(dask_ctx, job_id)
    wait_for(lambda: len(checkpoint_rows(dask_ctx, job_id)) >= 2, "two days done")
    asked = utcnow()
    service.cancel(dask_ctx, job_id=job_id)
    thread.join(timeout=60)
    assert not thread.is_alive()

    view = service.show_job(dask_ctx, job_id=job_id)
    assert view.job.status is JobStatus.cancelled
    late = Counter(c.step_id for c in checkpoint_rows(dask_ctx, job_id) if c.created_at > asked)
    # each task running at the cancel finished at most the day it was in; none started after
    assert all(n <= 1 for n in late.values()), late
    assert len(late) <= dask_ctx.settings.parallel
    done = len(checkpoint_rows(dask_ctx, job_id))
    assert done < view.job.cells_total
    time.sleep(3 * DAY_SECONDS)  # nothing still running writes another day
    assert len(checkpoint_rows(dask_ctx, job_id)) == done


COORDINATOR = """
import functools
import sys
from softcopy.ingestion import service
from softcopy.ingestion.dask_executor import DaskExecutor
from softcopy.registry import EXECUTORS
from tests.ingestion.test_dask_executor import slow_stage

runner = functools.partial(slow_stage, log=sys.argv[2])
EXECUTORS.register("dask", lambda: DaskExecutor(stage_runner=runner))
service.work(service.open_context(), once=True, job_id=int(sys.argv[1]))
"""


@needs_pg
@on_pg
def test_sigkill_the_coordinator_then_resume_elsewhere_fences_its_tasks(
    dask_ctx: service.Context, tmp_path: Path
) -> None:
    job_id = queue(dask_ctx)
    day_log = tmp_path / "days"
    env = os.environ | {"SOFTCOPY_LEASE_TIMEOUT": "2"}
    with (tmp_path / "coordinator.err").open("w") as err:  # the child keeps its own copy
        coordinator = subprocess.Popen(
            [sys.executable, "-c", COORDINATOR, str(job_id), str(day_log)],
            cwd=Path(__file__).parents[2],  # where `tests` imports from
            env=env,
            stderr=err,
        )

    def two_days() -> bool:
        assert coordinator.poll() is None, (tmp_path / "coordinator.err").read_text()
        return len(checkpoint_rows(dask_ctx, job_id)) >= 2

    wait_for(two_days, "two days done")
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    with Session(dask_ctx.engine) as session:
        old_epoch = session.get(IngestionJob, job_id).lease_epoch  # type: ignore[union-attr]

    # the lease expires (nobody heartbeats it: the orphaned task's writes do not), the job
    # is interrupted, and the orphan's next checkpoint is refused
    dask_ctx.settings = dataclasses.replace(dask_ctx.settings, lease_timeout=2.0)
    dask_ctx.clock = utcnow  # heartbeats were stamped by the real clock

    def interrupted() -> bool:
        return service.show_job(dask_ctx, job_id=job_id).job.status is JobStatus.interrupted

    wait_for(interrupted, "the lease to expire", seconds=30)
    expired = time.time()
    time.sleep(2 * DAY_SECONDS)  # the orphaned task reaches its next write, and is refused

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [sys.executable, "-m", "softcopy", "ingestion", "resume", str(job_id), "--json"],
        cwd=elsewhere,
        env=os.environ | {"SOFTCOPY_LEASE_TIMEOUT": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    view = service.show_job(dask_ctx, job_id=job_id)
    assert view.job.status is JobStatus.succeeded and view.job.lease_epoch > old_epoch

    rows = checkpoint_rows(dask_ctx, job_id)
    stale = [c for c in rows if c.lease_epoch == old_epoch and c.created_at.timestamp() > expired]
    assert stale == []  # nothing of the old epoch landed after the expiry
    # the day the orphaned task was working on when the job expired: done again, and only
    # the resumed job's write of it landed
    began = [line.split() for line in day_log.read_text().splitlines()]
    before = [b for b in began if float(b[3]) < expired]
    stage, source, day, _ = max(before, key=lambda b: float(b[3]))
    (cell,) = [c for c in rows if (str(c.stage), c.source, str(c.day)) == (stage, source, day)]
    assert cell.lease_epoch > old_epoch
    cells = [(c.stage, c.source, c.day) for c in rows]
    assert len(cells) == len(set(cells)) == view.job.cells_total
    assert service.verify(dask_ctx, job_id=job_id).ok


@needs_pg
@on_pg
def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from softcopy.cli.main import main

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setenv("SOFTCOPY_DASK_SCHEDULER", "tcp://127.0.0.1:9")  # discard: nobody
    code = main(["ingestion", "run", "--executor", "dask", "--mode", "backfill_range"])
    _out, err = capsys.readouterr()
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Dask scheduler tcp://127.0.0.1:9" in lines[0], err
    assert "cannot be reached" in lines[0] and "SOFTCOPY_DASK_SCHEDULER" in lines[0]
    settings = load_settings(demo_home)
    with Session(get_engine(settings.database_url)) as session:
        assert session.scalar(select(func.count()).select_from(IngestionJob)) == 0
        assert session.scalar(select(func.count()).select_from(IngestionPlan)) == 0


def test_state_in_sqlite_is_refused_naming_what_to_set(tmp_path: Path) -> None:
    build_demo(tmp_path, days=3, today=DEMO_TODAY)
    settings = load_settings(tmp_path, env={"SOFTCOPY_DASK_SCHEDULER": "tcp://127.0.0.1:9"})
    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    with pytest.raises(dask_executor.SharedStorageNeeded, match="set database_url = 'postgresql"):
        service.run(ctx, options=BACKFILL, executor="dask")
    with Session(ctx.engine) as session:
        assert session.scalar(select(func.count()).select_from(IngestionJob)) == 0


def test_no_scheduler_set_is_refused_naming_the_setting(tmp_path: Path) -> None:
    build_demo(tmp_path, days=3, today=DEMO_TODAY)
    settings = load_settings(tmp_path, env={})
    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    with pytest.raises(Exception, match="set dask_scheduler = 'tcp://host:8786'"):
        service.enqueue(ctx, options=BACKFILL, executor="dask")


def test_a_task_asks_the_stop_event_at_most_every_poll_and_stays_stopped() -> None:
    now = [0.0]
    asked: list[float] = []
    stopped = [False]

    def is_set() -> bool:
        asked.append(now[0])
        return stopped[0]

    check = dask_executor._at_most_every(0.25, is_set, clock=lambda: now[0])
    assert check() is False and asked == [0.0]  # the first day asks
    now[0] = 0.1
    assert check() is False and asked == [0.0]  # a day later, within the period: no round trip
    now[0] = 0.3
    stopped[0] = True
    assert check() is True and asked == [0.0, 0.3]
    stopped[0] = False  # an Event is never cleared by the coordinator; the answer is kept
    now[0] = 5.0
    assert check() is True and asked == [0.0, 0.3]
