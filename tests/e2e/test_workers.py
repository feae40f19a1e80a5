"""Real worker processes: SIGKILL at random checkpoints, racing workers, a frozen worker
whose lease is taken over; with parallel steps too (the coordinator and its step processes
SIGKILLed, a step failing beside running ones). No mocks of the runtime."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlmodel import Session, func, select

from softcopy.config import load_settings
from softcopy.db import utcnow
from softcopy.demo import build_demo
from softcopy.errors import StageFailed
from softcopy.ingestion import executors, service
from softcopy.ingestion.models import Checkpoint, IngestionJob, JobStep, LogRecord
from softcopy.ingestion.states import JobStatus, PlanMode, Stage, StepStatus
from softcopy.memory import index
from softcopy.memory.pipeline import run_stage
from softcopy.registry import EXECUTORS
from tests.conftest import DEMO_TODAY

BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range,
    range_start_day=DEMO_TODAY - timedelta(days=29),
    range_end_day=DEMO_TODAY,
)


def softcopy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "softcopy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | (env or {}),
        check=False,
    )


def start_worker(
    job_id: int, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "softcopy", "ingestion", "worker", "--job-id", str(job_id), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | (env or {}),
    )


def queue_job(ctx: service.Context, executor: str = "inline", chunk_days: int = 7) -> int:
    outcome = service.enqueue(ctx, options=BACKFILL, executor=executor, chunk_days=chunk_days)
    assert outcome.job is not None and outcome.job.job.id is not None
    return outcome.job.job.id


def checkpoints(ctx: service.Context, job_id: int, epoch: int | None = None) -> int:
    with Session(ctx.engine) as session:
        query = select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == job_id)
        if epoch is not None:
            query = query.where(Checkpoint.lease_epoch == epoch)
        return session.exec(query).one()


def index_rows(home: Path) -> list[tuple[str, str, str, str]]:
    with index.connect(home / "index.db") as conn:
        return sorted(conn.execute("SELECT source, day, item_id, content_hash FROM docs"))


@pytest.fixture(scope="module")
def reference_index(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str, str]]:
    """The index an uninterrupted run makes of the same demo archive (on its own SQLite)."""
    home = tmp_path_factory.mktemp("reference")
    build_demo(home, days=30, today=DEMO_TODAY)
    settings = load_settings(home, env={})
    from softcopy.db import get_engine

    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    return index_rows(home)


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_at_a_random_checkpoint_then_resume(ctx, reference_index, seed: int) -> None:
    job_id = queue_job(ctx, chunk_days=5)
    with Session(ctx.engine) as session:
        total = session.get(IngestionJob, job_id).cells_total  # type: ignore[union-attr]
    kill_at = random.Random(seed).randint(1, total - 1)
    worker = start_worker(job_id)
    deadline = time.monotonic() + 60
    while checkpoints(ctx, job_id) < kill_at and worker.poll() is None:
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_after = checkpoints(ctx, job_id)
    assert killed_after < total, "the worker finished before it could be killed"

    resumed = softcopy("ingestion", "resume", str(job_id), "--json")
    assert resumed.returncode == 0, resumed.stderr
    view = json.loads(resumed.stdout)
    assert view["job"]["status"] == "succeeded"
    assert view["job"]["cells_done"] == total == checkpoints(ctx, job_id)
    verified = softcopy("ingestion", "verify", "--job-id", str(job_id))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert index_rows(ctx.settings.home) == reference_index


PARALLEL = {"SOFTCOPY_PARALLEL": "2"}


@pytest.mark.parametrize("seed", range(1))  # a random checkpoint: one draw (a slow test)
def test_sigkill_the_coordinator_and_its_step_processes_then_resume(
    ctx, reference_index, seed: int
) -> None:
    """Parallel steps: the worker (the coordinator) is SIGKILLed once its step process runs
    steps; the step process exits by itself (it must not go on writing), then is killed
    too if not; a parallel resume ends with the index an uninterrupted serial run makes."""
    job_id = queue_job(ctx, chunk_days=1)
    with Session(ctx.engine) as session:
        total = session.get(IngestionJob, job_id).cells_total  # type: ignore[union-attr]
    worker = start_worker(job_id, env=PARALLEL)
    coordinator = psutil.Process(worker.pid)
    deadline = time.monotonic() + 120
    while not (step_processes := forked_by_forkserver(coordinator)):
        assert worker.poll() is None, "the worker ended before its step process started"
        assert time.monotonic() < deadline, "no step process started"
        time.sleep(0.01)
    kill_at = checkpoints(ctx, job_id) + random.Random(seed).randint(1, 20)
    while checkpoints(ctx, job_id) < min(kill_at, total - 1) and worker.poll() is None:
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.002)
    helpers = coordinator.children(recursive=True)  # the forkserver, its resource tracker
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    _, alive = psutil.wait_procs(step_processes, timeout=10)
    assert alive == [], "a step process went on after its coordinator died"
    for helper in helpers:  # the coordinator's other helpers too, whatever they do
        with contextlib.suppress(psutil.NoSuchProcess):
            helper.kill()
    killed_after = checkpoints(ctx, job_id)
    assert killed_after < total, "the worker finished before it could be killed"
    time.sleep(0.2)
    assert checkpoints(ctx, job_id) == killed_after  # nothing written after the kill

    resumed = softcopy("ingestion", "resume", str(job_id), "--json", env=PARALLEL)
    assert resumed.returncode == 0, resumed.stderr
    view = json.loads(resumed.stdout)
    assert view["job"]["status"] == "succeeded"
    assert view["job"]["cells_done"] == total == checkpoints(ctx, job_id)
    verified = softcopy("ingestion", "verify", "--job-id", str(job_id))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert index_rows(ctx.settings.home) == reference_index


def forked_by_forkserver(coordinator: psutil.Process) -> list[psutil.Process]:
    """The coordinator's step processes: children of its forkserver child."""
    try:
        servers = [
            child
            for child in coordinator.children()
            if "multiprocessing.forkserver" in " ".join(child.cmdline())
        ]
        return [step for server in servers for step in server.children()]
    except psutil.NoSuchProcess:
        return []


def fail_when_marked(ctx, stage: Stage, source: str, day):  # type: ignore[no-untyped-def]
    """The real stage work, except mail's publish fails while `<home>/fail-mail` exists (a
    module-level function: the step processes import it to run it)."""
    if stage is Stage.publish and source == "mail" and (ctx.settings.home / "fail-mail").exists():
        raise StageFailed(stage, source, day, "planted failure")
    return run_stage(ctx, stage, source, day)


def test_a_failing_step_among_parallel_steps_fails_the_job_cleanly(
    ctx, reference_index, monkeypatch
) -> None:
    monkeypatch.setitem(
        EXECUTORS, "failing", lambda: executors.InlineExecutor(stage_runner=fail_when_marked)
    )
    (ctx.settings.home / "fail-mail").touch()
    outcome = service.run(ctx, options=BACKFILL, executor="failing", parallel=2)
    assert outcome.job is not None
    job = outcome.job.job
    assert job.status is JobStatus.failed and "planted failure" in (job.error or "")
    with Session(ctx.engine) as session:
        steps = session.exec(select(JobStep).where(JobStep.job_id == job.id)).all()
    by_status = {s.status for s in steps}
    assert StepStatus.running not in by_status  # the steps beside it stopped at a boundary
    failed = [s for s in steps if s.status is StepStatus.failed]
    assert [(s.stage, s.source) for s in failed] == [(Stage.publish, "mail")]
    assert job.cells_done == checkpoints(ctx, job.id) < job.cells_total  # type: ignore[arg-type]

    (ctx.settings.home / "fail-mail").unlink()
    view = service.resume(ctx, job_id=job.id, parallel=2)  # type: ignore[arg-type]
    assert view.job.status is JobStatus.succeeded
    assert view.job.cells_done == view.job.cells_total == checkpoints(ctx, job.id)  # type: ignore[arg-type]
    assert service.verify(ctx, job_id=job.id).ok  # type: ignore[arg-type]
    assert index_rows(ctx.settings.home) == reference_index


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_two_workers_racing_for_one_job_run_it_once(ctx, parallel: str) -> None:
    job_id = queue_job(ctx)
    racers = [start_worker(job_id, "--json", env={"SOFTCOPY_PARALLEL": parallel}) for _ in range(2)]
    outputs = [json.loads(r.communicate(timeout=120)[0]) for r in racers]
    assert sorted(o["jobs"] for o in outputs) == [[], [job_id]]
    with Session(ctx.engine) as session:
        assert session.get(IngestionJob, job_id).status is JobStatus.succeeded  # type: ignore[union-attr]
        claims = session.exec(
            select(LogRecord).where(LogRecord.job_id == job_id, LogRecord.event == "job.transition")
        ).all()
    assert [r.fields["after"] for r in claims] == ["running", "succeeded"]


SLOW_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from softcopy.ingestion import service
    from softcopy.ingestion.executors import InlineExecutor
    from softcopy.memory.pipeline import run_stage
    from softcopy.registry import EXECUTORS

    marker = Path(sys.argv[2])

    def slow(ctx, stage, source, day):
        # between two days: no transaction is open while it sleeps
        marker.write_text(str(int(marker.read_text() or 0) + 1) if marker.exists() else "1")
        time.sleep(0.3)
        return run_stage(ctx, stage, source, day)

    EXECUTORS.register("slow", lambda: InlineExecutor(stage_runner=slow))
    ran = service.work(service.open_context(), once=True, job_id=int(sys.argv[1]))
    print("ran", ran)
    """
)


def test_a_frozen_worker_taken_over_cannot_write(ctx, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(EXECUTORS, "slow", executors.InlineExecutor)  # the resumer's executor
    job_id = queue_job(ctx, executor="slow")
    marker = tmp_path / "days-started"
    old = subprocess.Popen(
        [sys.executable, "-c", SLOW_WORKER, str(job_id), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"SOFTCOPY_LEASE_TIMEOUT": "600"},  # its own heartbeat stays quiet
    )
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text() == "4"):
        assert old.poll() is None and time.monotonic() < deadline, (
            old.stderr.read() if old.stderr else ""
        )
        time.sleep(0.01)
    old.send_signal(signal.SIGSTOP)  # asleep inside day 4, holding its lease
    with Session(ctx.engine) as session:
        old_epoch = session.get(IngestionJob, job_id).lease_epoch  # type: ignore[union-attr]
    frozen_at = checkpoints(ctx, job_id, old_epoch)
    assert frozen_at == 3
    time.sleep(1.2)

    ctx.settings = load_settings(
        ctx.settings.home, env=os.environ | {"SOFTCOPY_LEASE_TIMEOUT": "1"}
    )
    ctx.clock = utcnow  # the worker stamps its heartbeats with the real clock
    view = service.resume(ctx, job_id=job_id)  # the lease expired: taken over, run to the end
    assert view.job.status is JobStatus.succeeded and view.job.lease_epoch > old_epoch

    old.send_signal(signal.SIGCONT)
    _, err = old.communicate(timeout=60)
    assert old.returncode == 0, err
    assert "Traceback" not in err
    assert checkpoints(ctx, job_id, old_epoch) == frozen_at  # nothing written after the takeover
    with Session(ctx.engine) as session:
        job = session.get(IngestionJob, job_id)
        assert job is not None and job.status is JobStatus.succeeded
    assert service.verify(ctx, job_id=job_id).ok
