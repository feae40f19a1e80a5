"""Jobs are never stuck: a dead worker's lease expires on every path that reads or claims
job state, an unclaimed queued job stops blocking, `cancel --force` signals only the
worker itself, and a fault of the machine ends a job `failed` and resumable (issue 8)."""

from __future__ import annotations

import errno
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psutil
import pytest
from sqlalchemy import event, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from softcopy.db import session_scope
from softcopy.errors import Conflict, DatabaseFault
from softcopy.ingestion import runtime, service
from softcopy.ingestion.executors import InlineExecutor
from softcopy.ingestion.models import CellClaim, IngestionJob, LogRecord
from softcopy.ingestion.states import (
    CellState,
    FindingKind,
    JobStatus,
    PlanMode,
    Stage,
    StepStatus,
)
from softcopy.memory import index
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stage import StageContext, StageResult
from softcopy.registry import EXECUTORS
from tests.conftest import DEMO_TODAY

START, END = DEMO_TODAY - timedelta(days=29), DEMO_TODAY - timedelta(days=20)
BACKFILL = service.PlanOptions(  # ten days of the demo: enough cells, quick to run
    mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END
)
FORCED = service.PlanOptions(**{**BACKFILL.__dict__, "force": True})


class Clock:
    """The injected clock: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(ctx: service.Context) -> Clock:
    ctx.clock = Clock()
    return ctx.clock


def status(ctx: service.Context, job_id: int) -> JobStatus:
    with Session(ctx.engine) as session:
        job = session.get(IngestionJob, job_id)
        assert job is not None
        return job.status


def claims(ctx: service.Context, job_id: int) -> int:
    with Session(ctx.engine) as session:
        return len(session.exec(select(CellClaim).where(CellClaim.job_id == job_id)).all())


def set_job(ctx: service.Context, job_id: int, **values: Any) -> None:
    with session_scope(ctx.engine) as session:
        session.execute(update(IngestionJob).where(IngestionJob.id == job_id).values(**values))  # type: ignore[arg-type]


def dead_worker_job(ctx: service.Context, clock: Clock) -> int:
    """A job a worker claimed and then stopped heartbeating for longer than the lease."""
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    claimed = runtime.claim(ctx.settings, owner="gone:1:dead", job_id=job_id, now=clock())
    assert claimed is not None and status(ctx, job_id) is JobStatus.running
    clock.advance(ctx.settings.lease_timeout + 1)
    return job_id


def use_executor(monkeypatch: pytest.MonkeyPatch, runner: Callable[..., StageResult]) -> str:
    monkeypatch.setitem(EXECUTORS, "test", lambda: InlineExecutor(stage_runner=runner))
    return "test"


# -- 1. lease expiry on every path that reads or claims job state --------------------------

READS: dict[str, Callable[[service.Context, int], object]] = {
    "show": lambda ctx, job_id: service.show_job(ctx, job_id=job_id),
    "jobs": lambda ctx, job_id: service.list_jobs(ctx),
    "logs": lambda ctx, job_id: service.job_logs(ctx, job_id=job_id),
    "log tail": lambda ctx, job_id: service.log_tail(ctx, job_id=job_id),
    "coverage": lambda ctx, job_id: service.coverage(ctx),
    "coverage snapshot": lambda ctx, job_id: service.latest_coverage(ctx),
    "plan": lambda ctx, job_id: service.plan(ctx, options=BACKFILL),
    "preview": lambda ctx, job_id: service.preview_plan(ctx, options=BACKFILL),
    "can resume": lambda ctx, job_id: service.check_resume(ctx, job_id=job_id),
    # what the dashboard's poller calls (its jobs panel polls list_jobs and show_job)
    "live cells": lambda ctx, job_id: service.live_cells(ctx),
    # what the stage primitives (`softcopy ingest`, `memory export`) ask before a cell
    "held_cells": lambda ctx, job_id: service.held_cells(ctx, sources=["notes"]),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_every_read_of_job_state_expires_a_dead_workers_lease(
    ctx: service.Context, clock: Clock, read: str
) -> None:
    job_id = dead_worker_job(ctx, clock)
    READS[read](ctx, job_id)
    assert status(ctx, job_id) is JobStatus.interrupted
    assert claims(ctx, job_id) == 0


def test_coverage_no_longer_counts_a_dead_workers_cells_as_running(
    ctx: service.Context, clock: Clock
) -> None:
    dead_worker_job(ctx, clock)
    assert CellState.running not in {c.state for c in service.coverage(ctx).cells}


def test_a_run_takes_the_cells_of_a_dead_workers_job(ctx: service.Context, clock: Clock) -> None:
    job_id = dead_worker_job(ctx, clock)
    outcome = service.run(ctx, options=FORCED)  # the old code refused: "held by job N"
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert status(ctx, job_id) is JobStatus.interrupted


def test_cancel_of_a_job_whose_lease_expired_ends_it_at_once(
    ctx: service.Context, clock: Clock
) -> None:
    job_id = dead_worker_job(ctx, clock)
    view = service.cancel(ctx, job_id=job_id)
    assert view.job.status is JobStatus.cancelled and claims(ctx, job_id) == 0
    assert {s.step.status for s in view.steps} == {StepStatus.cancelled}
    assert "worker stopped heartbeating" in (view.job.error or "")


@pytest.fixture
def gone_process() -> tuple[int, float]:
    """The pid and start time of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


def test_cancel_of_a_job_whose_worker_process_is_gone_ends_it_at_once(
    ctx: service.Context, clock: Clock, gone_process: tuple[int, float]
) -> None:
    """The heartbeat is fresh, but the worker's process on this host no longer exists."""
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="w", job_id=job_id, now=clock()) is not None
    pid, started = gone_process
    set_job(ctx, job_id, worker_pid=pid, worker_started=started)
    view = service.cancel(ctx, job_id=job_id)
    assert view.job.status is JobStatus.cancelled and claims(ctx, job_id) == 0
    assert f"worker process {pid} is gone" in (view.job.error or "")


def test_a_cancelling_job_whose_worker_died_ends_cancelled(
    ctx: service.Context, clock: Clock
) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="w", job_id=job_id, now=clock()) is not None
    assert service.cancel(ctx, job_id=job_id).job.status is JobStatus.cancelling
    clock.advance(ctx.settings.lease_timeout + 1)  # it died before the next day boundary
    view = service.show_job(ctx, job_id=job_id)
    assert view.job.status is JobStatus.cancelled and claims(ctx, job_id) == 0
    assert service.resume(ctx, job_id=job_id).job.status is JobStatus.succeeded


def test_a_fresh_heartbeat_keeps_the_job_alive(ctx: service.Context, clock: Clock) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="w", job_id=job_id, now=clock()) is not None
    clock.advance(ctx.settings.lease_timeout - 1)
    for read in READS.values():
        read(ctx, job_id)
    assert status(ctx, job_id) is JobStatus.running
    with pytest.raises(Conflict, match=f"held by job {job_id}"):
        service.enqueue(ctx, options=FORCED)


def test_logs_follow_ends_when_the_dead_workers_job_is_interrupted(
    ctx: service.Context, clock: Clock
) -> None:
    job_id = dead_worker_job(ctx, clock)
    seen: list[LogRecord] = []
    follower = threading.Thread(
        target=lambda: seen.extend(service.follow_logs(ctx, job_id=job_id, poll_seconds=0.05)),
        daemon=True,  # the old code followed forever
    )
    follower.start()
    follower.join(timeout=20)
    assert not follower.is_alive(), "logs --follow never ended"
    assert seen[-1].event == "job.transition" and seen[-1].fields["after"] == "interrupted"


# -- 2. a queued job nobody claimed ---------------------------------------------------------


def test_an_unclaimed_queued_job_is_marked_reported_and_stops_blocking(
    ctx: service.Context, clock: Clock
) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)  # detached, and its worker never came
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert service.show_job(ctx, job_id=job_id).unclaimed_seconds is None
    with pytest.raises(Conflict, match=f"held by job {job_id}"):  # within the lease: it waits
        service.enqueue(ctx, options=FORCED)

    clock.advance(ctx.settings.lease_timeout + 600)
    view = service.show_job(ctx, job_id=job_id)
    assert view.job.status is JobStatus.queued
    assert view.unclaimed_seconds == pytest.approx(ctx.settings.lease_timeout + 600)
    report = service.reconcile(ctx)
    (finding,) = [f for f in report.findings if f.kind is FindingKind.unclaimed_job]
    assert finding.job_id == job_id and "unclaimed for 11 min" in finding.detail

    taker = service.run(ctx, options=FORCED)  # a new run takes its cells
    assert taker.job is not None and taker.job.job.status is JobStatus.succeeded
    left = service.show_job(ctx, job_id=job_id)
    assert left.job.status is JobStatus.interrupted and claims(ctx, job_id) == 0
    assert f"job {taker.job.job.id} took its cells" in (left.job.error or "")
    resumed = service.resume(ctx, job_id=job_id)  # nothing of it is lost: it still runs
    assert resumed.job.status is JobStatus.succeeded
    assert resumed.job.cells_done == resumed.job.cells_total


def test_an_unclaimed_queued_job_is_claimed_by_any_worker(
    ctx: service.Context, clock: Clock
) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    clock.advance(ctx.settings.lease_timeout + 600)
    assert service.work(ctx, once=True) == [queued.job.job.id]  # no --job-id: any worker
    assert status(ctx, queued.job.job.id) is JobStatus.succeeded


def test_the_cli_and_the_dashboard_mark_an_unclaimed_job(
    ctx: service.Context, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from softcopy.cli.main import main
    from softcopy.dashboard.jobs import JobsPanel

    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    set_job(ctx, job_id, queued_at=datetime.now(UTC) - timedelta(minutes=12))  # the real clock
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["ingestion", "jobs"]) == 0
    assert "queued, unclaimed for 12 min" in capsys.readouterr().out
    # --json carries what the table shows, the field the API's GET /jobs lists
    assert main(["ingestion", "jobs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == job_id and listed["status"] == "queued"
    assert 12 * 60 <= listed["unclaimed_seconds"] < 3600  # the real clock: a bit more
    assert main(["ingestion", "show", str(job_id)]) == 0
    assert "unclaimed for 12 min" in capsys.readouterr().out
    panel = JobsPanel(service.open_context(ctx.settings.home), poll_interval=0)
    panel.refresh()
    # the job view's "now running" line marks it, and so does its row in the jobs list
    assert "waiting for a worker: unclaimed for 12 min" in panel.detail.running_line.value
    assert "unclaimed for 12 min" in panel._rows[job_id].status.value
    set_job(ctx, job_id, queued_at=datetime.now(UTC))  # a worker may still come: no mark
    panel.refresh()
    assert "unclaimed" not in panel._rows[job_id].status.value
    assert main(["ingestion", "jobs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == job_id and listed["unclaimed_seconds"] is None


def test_ingest_takes_the_cells_of_an_unclaimed_queued_job_and_says_so(
    ctx: service.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    """`softcopy ingest` (no jobs, claims nothing) is not blocked forever by a queued job
    no worker claimed: as a run does, it takes the job's cells and the job becomes
    interrupted (no worker claims it any more, so nothing races), resumable; one line
    names the job, since when it waited and how to continue it. Within the lease the job's
    cells stay its own."""
    import json

    from softcopy.cli.main import main

    queued = service.enqueue(ctx, options=BACKFILL)  # detached, its worker never came
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    set_job(ctx, job_id, queued_at=datetime.now(UTC))  # the CLI reads the real clock
    days = ["--range-start-day", START.isoformat(), "--range-end-day", END.isoformat()]
    assert main(["ingest", *days]) == 1  # within the lease: a worker may still come
    assert f"held by job {job_id}" in capsys.readouterr().err
    assert status(ctx, job_id) is JobStatus.queued and claims(ctx, job_id) > 0

    since = datetime.now(UTC) - timedelta(minutes=12)
    set_job(ctx, job_id, queued_at=since)
    assert main(["ingest", *days, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "held by job" not in out + err
    (line,) = [line for line in err.splitlines() if f"job {job_id}" in line]
    assert line.startswith(
        f"job {job_id} was queued since {since:%Y-%m-%d %H:%M:%S} UTC, unclaimed for 12 min"
    )
    assert line.endswith(
        f"job {job_id} is now interrupted; `softcopy ingestion resume {job_id}` continues it"
    )
    (taken,) = json.loads(out)["took_cells_of"]
    assert taken["job_id"] == job_id and taken["unclaimed_seconds"] >= 12 * 60
    left = service.show_job(ctx, job_id=job_id)
    assert left.job.status is JobStatus.interrupted and claims(ctx, job_id) == 0
    assert "a cli:ingest run took its cells" in (left.job.error or "")
    assert service.work(ctx, once=True) == []  # no worker claims it now: nothing races
    resumed = service.resume(ctx, job_id=job_id)  # nothing of it is lost
    assert resumed.job.status is JobStatus.succeeded
    assert resumed.job.cells_done == resumed.job.cells_total


def test_a_stage_primitive_takes_only_the_unclaimed_jobs_that_hold_its_cells(
    ctx: service.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    """`memory export|embed|publish` take an unclaimed queued job's cells only when it holds
    one of theirs (that source, stage and days): another job waits on for its worker."""
    from softcopy.cli.main import main

    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    set_job(ctx, job_id, queued_at=datetime.now(UTC) - timedelta(hours=3))
    outside = (START - timedelta(days=1)).isoformat()
    assert main(["memory", "export", "--source", "notes", "--day", outside]) == 0
    assert f"job {job_id}" not in capsys.readouterr().err
    assert status(ctx, job_id) is JobStatus.queued  # none of its cells: left waiting

    assert main(["memory", "export", "--source", "notes", "--day", START.isoformat()]) == 0
    err = capsys.readouterr().err
    assert "held by job" not in err
    assert f"job {job_id} was queued since " in err and ", unclaimed for 3.0 h" in err
    assert status(ctx, job_id) is JobStatus.interrupted and claims(ctx, job_id) == 0


def test_the_dashboards_poll_ends_when_a_dead_workers_job_is_interrupted(
    ctx: service.Context, clock: Clock
) -> None:
    from softcopy.dashboard.jobs import JobsPanel

    job_id = dead_worker_job(ctx, clock)
    panel = JobsPanel(ctx, poll_interval=0)
    assert panel._tick() is False  # what the poller thread calls: nothing live, stop
    assert (
        panel.detail.status == JobStatus.interrupted
        and status(ctx, job_id) is JobStatus.interrupted
    )


# -- 3. cancel --force signals only the worker itself ---------------------------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def claimed_by(ctx: service.Context, clock: Clock, pid: int, started: float) -> int:
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="w", job_id=job_id, now=clock()) is not None
    set_job(ctx, job_id, worker_pid=pid, worker_started=started)
    return job_id


def test_force_cancel_spares_a_stranger_that_reuses_the_workers_pid(
    ctx: service.Context, clock: Clock, sleeper: subprocess.Popen[bytes]
) -> None:
    """The recorded pid is alive, but it started at another time than the worker did."""
    started = psutil.Process(sleeper.pid).create_time()
    job_id = claimed_by(ctx, clock, sleeper.pid, started - 100)
    view = service.cancel(ctx, job_id=job_id, force=True)
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(timeout=0.5)  # the stranger lives on
    assert view.job.status is JobStatus.cancelled and claims(ctx, job_id) == 0
    assert f"worker process {sleeper.pid} is gone" in (view.job.error or "")


def test_force_cancel_of_a_live_stranger_pid_fences_without_signalling(
    ctx: service.Context, clock: Clock, sleeper: subprocess.Popen[bytes]
) -> None:
    """No start time recorded (a row from before it was): nothing proves the pid is the
    worker, so force only fences it."""
    job_id = claimed_by(ctx, clock, sleeper.pid, 0.0)
    set_job(ctx, job_id, worker_started=None)
    before = service.show_job(ctx, job_id=job_id).job
    assert before.status is JobStatus.running
    view = service.cancel(ctx, job_id=job_id, force=True)
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(timeout=0.5)
    assert view.job.status is JobStatus.cancelled and view.job.lease_epoch > before.lease_epoch
    assert claims(ctx, job_id) == 0


def test_a_reused_pid_does_not_keep_a_dead_workers_job_alive(
    ctx: service.Context, clock: Clock, sleeper: subprocess.Popen[bytes]
) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    job_id = claimed_by(ctx, clock, sleeper.pid, started - 100)
    view = service.show_job(ctx, job_id=job_id)
    assert view.job.status is JobStatus.interrupted
    assert f"worker process {sleeper.pid} is gone" in (view.job.error or "")


def test_force_cancel_signals_the_worker_when_host_pid_and_start_time_match(
    ctx: service.Context, clock: Clock, sleeper: subprocess.Popen[bytes]
) -> None:
    job_id = claimed_by(ctx, clock, sleeper.pid, psutil.Process(sleeper.pid).create_time())
    view = service.cancel(ctx, job_id=job_id, force=True)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert view.job.status is JobStatus.cancelled and claims(ctx, job_id) == 0


def test_a_claim_records_host_pid_and_start_time(ctx: service.Context, clock: Clock) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="me", job_id=job_id, now=clock()) is not None
    row = service.show_job(ctx, job_id=job_id).job
    me = psutil.Process()
    assert (row.worker_host, row.worker_pid) == (socket.gethostname(), me.pid)
    assert row.worker_started == pytest.approx(me.create_time(), abs=0.02)


# -- 4. faults of the machine inside a running job ------------------------------------------


def enospc_on(call: int) -> tuple[Callable[..., StageResult], list[tuple[Stage, str, date]]]:
    calls: list[tuple[Stage, str, date]] = []
    state = {"n": 0}

    def runner(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        state["n"] += 1
        if state["n"] == call:
            raise OSError(errno.ENOSPC, "No space left on device", "/home/artifacts/x.jsonl")
        calls.append((stage, source, day))
        return run_stage(c, stage, source, day)

    return runner, calls


def test_a_full_disk_in_a_stage_fails_the_job_with_the_error_and_resume_continues(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, calls = enospc_on(8)
    outcome = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, runner))
    assert outcome.job is not None
    job = outcome.job.job
    assert job.id is not None
    assert job.status is JobStatus.failed and "No space left on device" in (job.error or "")
    (failed,) = [s.step for s in outcome.job.steps if s.step.status is StepStatus.failed]
    assert "No space left on device" in (failed.error or "")
    assert claims(ctx, job.id) == 0
    # the day's failure is in the ledger (coverage says `failed`) and in the log
    day = [(c.source, c.day) for c in service.coverage(ctx).cells if c.state is CellState.failed]
    assert len(day) == 1 and day[0][0] == failed.source
    events = [r.event for r in service.job_logs(ctx, job_id=job.id, limit=10_000)]
    assert "day.failed" in events

    resumed = service.resume(ctx, job_id=job.id)  # the disk has room again
    assert resumed.job.status is JobStatus.succeeded
    assert len(calls) == len(set(calls)) == job.cells_total
    assert service.verify(ctx, job_id=job.id).ok


def test_a_worker_fenced_while_it_fails_leaves_the_job_to_the_fence(ctx: service.Context) -> None:
    """Its progress display breaks just after a `cancel --force`: the worker may not write
    the job's end (it lost the lease), and that is no error of the run."""

    def progress(done: int, total: int, label: str) -> None:
        if done == 3:
            with Session(ctx.engine) as session:
                job_id = session.exec(select(IngestionJob.id)).one()
            assert job_id is not None
            service.cancel(ctx, job_id=job_id, force=True)
            raise RuntimeError("the progress bar broke")

    outcome = service.run(ctx, options=BACKFILL, progress=progress)
    assert outcome.job is not None and outcome.job.job.id is not None
    assert outcome.job.job.status is JobStatus.cancelled and claims(ctx, outcome.job.job.id) == 0


def test_an_index_that_fills_mid_publish_fails_the_day_with_the_real_error(
    ctx: service.Context,
) -> None:
    """SQLite rolls a transaction back itself when the file cannot grow (SQLITE_FULL); the
    publish must report that, not the second ROLLBACK's 'no transaction is active'."""
    early = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=START, range_end_day=START
    )
    assert service.run(ctx, options=early).job is not None  # the index exists now
    with index.connect(ctx.settings.index_path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # this connection cannot grow it
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.id is not None
    job = outcome.job.job
    assert job.status is JobStatus.failed, job.error
    assert "full" in (job.error or "") and "no transaction is active" not in (job.error or "")
    assert claims(ctx, job.id) == 0
    with index.connect(ctx.settings.index_path) as conn:
        conn.execute("PRAGMA max_page_count = 1073741823")  # the disk has room again
    assert service.resume(ctx, job_id=job.id).job.status is JobStatus.succeeded
    assert service.verify(ctx, job_id=job.id).ok


class RefusedWrites:
    """The control-plane database refuses the next `n` job-row updates, as a full disk
    does, once `arm` is called (SQLAlchemy's own event hook: no softcopy code is patched)."""

    def __init__(self, ctx: service.Context) -> None:
        self.engine = ctx.engine
        self.left = 0
        event.listen(self.engine, "before_cursor_execute", self._refuse)

    def arm(self, n: int) -> None:
        self.left = n

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._refuse)

    def _refuse(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.left and statement.lstrip().upper().startswith("UPDATE INGESTION_JOB"):
            self.left -= 1
            raise OperationalError(statement, {}, sqlite3.OperationalError("database is full"))


@pytest.fixture
def refused(ctx: service.Context) -> Iterator[RefusedWrites]:
    hook = RefusedWrites(ctx)
    yield hook
    hook.close()


def test_a_database_that_refuses_the_jobs_end_for_a_moment_still_ends_it_failed(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch, refused: RefusedWrites
) -> None:
    runner, _ = enospc_on(5)

    def full(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        try:
            return runner(c, stage, source, day)
        except OSError:
            refused.arm(2)  # the disk the database lives on is full too, for a moment
            raise

    outcome = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, full))
    assert outcome.job is not None and outcome.job.job.id is not None
    job = outcome.job.job
    assert job.status is JobStatus.failed and "No space left on device" in (job.error or "")
    assert claims(ctx, job.id) == 0
    assert service.resume(ctx, job_id=job.id).job.status is JobStatus.succeeded


def test_a_database_that_refuses_every_write_leaves_a_job_that_expires_then_resumes(
    ctx: service.Context, clock: Clock, monkeypatch: pytest.MonkeyPatch, refused: RefusedWrites
) -> None:
    """Nothing can be written, so the job's end cannot be either: the worker says so in one
    error, and the next read after the lease timeout interrupts the job (resumable)."""
    runner, _ = enospc_on(5)

    def full(c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        try:
            return runner(c, stage, source, day)
        except OSError:
            refused.arm(1000)
            raise

    with pytest.raises(runtime.JobNotEnded, match="could not be recorded as failed"):
        service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, full))
    refused.arm(0)  # the disk has room again
    with Session(ctx.engine) as session:
        job = session.exec(select(IngestionJob)).one()
    assert job.status is JobStatus.running and job.id is not None
    clock.advance(ctx.settings.lease_timeout + 1)
    assert service.show_job(ctx, job_id=job.id).job.status is JobStatus.interrupted
    assert claims(ctx, job.id) == 0
    assert service.resume(ctx, job_id=job.id).job.status is JobStatus.succeeded


def test_ctrl_c_in_a_job_fenced_at_that_moment_is_still_a_ctrl_c(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands while a `cancel --force` has just fenced the worker: the job cannot be
    ended by it (the fence did that), but the caller still learns of the Ctrl-C, not of a
    lost lease."""
    job_ids: list[int] = []

    def interrupted(ctx_: StageContext, source: str, day: date, stage: Stage) -> StageResult:
        (job_id,) = job_ids
        service.cancel(ctx, job_id=job_id, force=True)  # bumps the epoch: we are fenced
        raise KeyboardInterrupt

    queued = service.enqueue(ctx, options=BACKFILL, executor=use_executor(monkeypatch, interrupted))
    assert queued.job is not None and queued.job.job.id is not None
    job_ids.append(queued.job.job.id)
    claimed = runtime.claim(ctx.settings, owner="test", job_id=job_ids[0], now=ctx.clock())
    assert claimed is not None
    with pytest.raises(KeyboardInterrupt):
        runtime.execute(
            ctx.settings,
            job_id=job_ids[0],
            epoch=claimed[1],
            executor=InlineExecutor(stage_runner=interrupted),
            clock=ctx.clock,
        )
    assert status(ctx, job_ids[0]) is JobStatus.cancelled


def test_following_a_job_no_worker_claims_ends_once_it_waited_past_the_lease(
    ctx: service.Context, clock: Clock
) -> None:
    queued = service.enqueue(ctx, options=BACKFILL)  # no worker is started
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    clock.advance(ctx.settings.lease_timeout + 1)  # a worker that was coming would have
    rows = list(service.follow_logs(ctx, job_id=job_id, poll_seconds=0))
    assert [r.event for r in rows] == ["job.created"]
    assert status(ctx, job_id) is JobStatus.queued
    assert service.show_job(ctx, job_id=job_id).unclaimed_seconds


class ReadOnlyOnce:
    """The next `n` updates of a job row meet a read-only database: the driver's own error
    (SQLite's query_only, PostgreSQL's read-only transaction), which the engine turns into
    a DatabaseFault as it does for a real one."""

    def __init__(self, ctx: service.Context) -> None:
        self.engine = ctx.engine
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.left = 0
        self.dirty: set[int] = set()  # SQLite connections left query_only
        event.listen(self.engine, "before_cursor_execute", self._hook, retval=True)

    def arm(self, n: int) -> None:
        self.left = n

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> Any:
        raw = id(conn.connection.dbapi_connection)
        if raw in self.dirty:
            cursor.execute("PRAGMA query_only = OFF")
            self.dirty.discard(raw)
        if self.left and statement.lstrip().upper().startswith("UPDATE INGESTION_JOB"):
            self.left -= 1
            if self.sqlite:
                cursor.execute("PRAGMA query_only = ON")
                self.dirty.add(raw)
            else:
                cursor.execute("SET TRANSACTION READ ONLY")
        return statement, parameters


@pytest.fixture
def read_only(ctx: service.Context) -> Iterator[ReadOnlyOnce]:
    hook = ReadOnlyOnce(ctx)
    yield hook
    hook.close()


def test_a_polling_worker_outlives_a_database_fault_and_a_single_one_reports_it(
    ctx: service.Context, monkeypatch: pytest.MonkeyPatch, read_only: ReadOnlyOnce
) -> None:
    stop = threading.Event()

    class StopsAfterItsJob(InlineExecutor):
        def run_step(self, ticket, on_day=None):  # type: ignore[no-untyped-def]
            stop.set()  # the worker ends its loop once this job is over
            return super().run_step(ticket, on_day)

    monkeypatch.setitem(EXECUTORS, "stops", StopsAfterItsJob)
    queued = service.enqueue(ctx, options=BACKFILL, executor="stops")
    assert queued.job is not None and queued.job.job.id is not None
    faults: list[Exception] = []
    read_only.arm(1)  # the claim's UPDATE of the job row fails once
    ran = service.work(ctx, once=False, idle_seconds=0, stop=stop, on_fault=faults.append)
    assert ran == [queued.job.job.id] and status(ctx, ran[0]) is JobStatus.succeeded
    assert len(faults) == 1 and isinstance(faults[0], DatabaseFault), faults

    again = service.enqueue(ctx, options=FORCED)
    assert again.job is not None
    read_only.arm(1)
    with pytest.raises(DatabaseFault):  # `worker 3` / --once: the fault is the answer
        service.work(ctx, once=True)
    assert status(ctx, again.job.job.id) is JobStatus.queued  # nothing claimed it


def test_reconcile_reports_a_dead_lease_as_a_fact_and_the_cli_names_its_command(
    ctx: service.Context, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    from softcopy.cli.main import main

    job_id = dead_worker_job(ctx, clock)  # not yet ended: no read of job state since
    with Session(ctx.engine) as session:  # the raw row, not a read that expires leases
        row = session.get(IngestionJob, job_id)
        assert row is not None and row.status is JobStatus.running
    report = service.reconcile(ctx)
    (finding,) = [f for f in report.findings if f.kind is FindingKind.dead_lease]
    assert finding.job_id == job_id and status(ctx, job_id) is JobStatus.interrupted
    assert finding.detail == (
        f"job {job_id}'s worker is gone (no heartbeat, or no process): ended; "
        f"resuming job {job_id} continues it"
    )  # a fact in no face's words: the CLI adds its command, the dashboard its button

    other = dead_worker_job(ctx, clock)
    assert main(["ingestion", "reconcile", "--home", str(ctx.settings.home)]) in (0, 1)
    out = capsys.readouterr().out
    assert f"dead_lease: job {other}: job {other}'s worker is gone" in out
    assert f"continues it (softcopy ingestion resume {other})" in out


def test_an_unclaimed_queued_job_does_not_block_resume_nor_its_button(
    ctx: service.Context, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check_resume` (what disables the dashboard's Resume) agrees with `resume`: a queued
    job no worker claimed within the lease timeout gives its cells up to a resume."""
    runner, _ = enospc_on(8)
    failed = service.run(ctx, options=BACKFILL, executor=use_executor(monkeypatch, runner))
    assert failed.job is not None and failed.job.job.id is not None
    job_id = failed.job.job.id
    assert failed.job.job.status is JobStatus.failed
    waiting = service.enqueue(ctx, options=FORCED)  # its worker never comes
    assert waiting.job is not None and waiting.job.job.id is not None
    assert service.check_resume(ctx, job_id=job_id).blocker  # within the lease: it waits

    clock.advance(ctx.settings.lease_timeout + 1)
    assert service.check_resume(ctx, job_id=job_id).blocker is None
    assert service.resume(ctx, job_id=job_id).job.status is JobStatus.succeeded
    assert status(ctx, waiting.job.job.id) is JobStatus.interrupted
