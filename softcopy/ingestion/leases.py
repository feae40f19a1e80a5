"""Leases: a worker takes one (`claim`), keeps it fresh (`Heartbeat`), and anyone can tell
whether its holder is still there. A worker is named by its host, pid and process start
time (psutil), so a pid the kernel has since given to another process is never taken for
the worker: it is neither signalled nor trusted to be alive. Also: how long a queued job
has waited for a worker beyond the lease timeout ("unclaimed").

What happens to a job whose worker is gone is in jobs.py.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from softcopy.config import Settings
from softcopy.db import get_engine, session_scope
from softcopy.ingestion.models import IngestionJob
from softcopy.ingestion.states import JobStatus
from softcopy.ingestion.transitions import IllegalTransition, LeaseLost, fence, move_job

Clock = Callable[[], datetime]

# psutil derives a start time from clock ticks since boot (1/100 s): the same process
# always gives the same value; a different process with the same pid almost never does.
_SAME_START = 0.02


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    started: float  # the process's start time, seconds since the epoch


def this_worker() -> WorkerIdentity:
    import psutil  # here and below: a process that only reads leases (the dashboard) needs none

    return WorkerIdentity(socket.gethostname(), os.getpid(), psutil.Process().create_time())


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(
    settings: Settings, *, owner: str, job_id: int | None = None, now: datetime
) -> tuple[int, int] | None:
    """Take the lease of a queued job (that one, or the oldest): (job id, epoch), or None."""
    engine = get_engine(settings.database_url)
    me = this_worker()
    with session_scope(engine) as session:
        query = select(IngestionJob.id).where(IngestionJob.status == JobStatus.queued)
        if job_id is not None:
            query = query.where(IngestionJob.id == job_id)
        for candidate in session.scalars(query.order_by(IngestionJob.id).limit(20)):
            job = session.get(IngestionJob, candidate)
            assert job is not None
            try:
                move_job(
                    session,
                    job,
                    JobStatus.running,
                    now=now,
                    lease_owner=owner,
                    lease_epoch=job.lease_epoch + 1,
                    heartbeat_at=now,
                    worker_pid=me.pid,
                    worker_host=me.host,
                    worker_started=me.started,
                )
            except IllegalTransition:
                continue  # another worker took it first
            return candidate, job.lease_epoch
    return None


class Heartbeat(threading.Thread):
    """Keeps the lease fresh while a long day runs; every day's checkpoint also heartbeats."""

    def __init__(self, settings: Settings, *, job_id: int, epoch: int, clock: Clock) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.settings = settings
        self.job_id = job_id
        self.epoch = epoch
        self.clock = clock
        self.interval = max(0.2, settings.lease_timeout / 4)
        self._stopped = threading.Event()

    def run(self) -> None:
        engine = get_engine(self.settings.database_url)
        while not self._stopped.wait(self.interval):
            try:
                with session_scope(engine) as session:
                    fence(session, job_id=self.job_id, epoch=self.epoch, now=self.clock())
            except LeaseLost:
                return  # the job moved on; the worker stops at its next write
            except OperationalError:
                continue  # a busy database: the next beat tries again

    def stop(self) -> None:
        self._stopped.set()


def deadline(now: datetime, timeout: float) -> datetime:
    """Heartbeats older than this are expired leases."""
    return now - timedelta(seconds=timeout)


def lease_expired(job: IngestionJob, before: datetime) -> bool:
    return job.heartbeat_at is None or job.heartbeat_at < before


def worker_is_gone(job: IngestionJob) -> bool:
    """Provable only for a worker on this host: no process has its pid, it is a zombie,
    or the process with its pid started at another time (the pid was reused)."""
    if job.worker_pid is None or job.worker_host != socket.gethostname():
        return False
    import psutil

    try:
        process = psutil.Process(job.worker_pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = process.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False
    return job.worker_started is not None and abs(started - job.worker_started) > _SAME_START


def is_the_worker(job: IngestionJob) -> bool:
    """True only when host, pid and start time all match a live process: the one process
    that may be signalled. A row without a recorded start time proves nothing."""
    if job.worker_pid is None or job.worker_started is None:
        return False
    if job.worker_host != socket.gethostname():
        return False
    import psutil

    try:
        started = psutil.Process(job.worker_pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return abs(started - job.worker_started) <= _SAME_START


def signal_worker(job: IngestionJob) -> bool:
    """SIGTERM the job's worker when it provably is that process; whether it was sent."""
    if job.worker_pid == os.getpid():
        return False  # a foreground run cancelled from its own process stops at a boundary
    if not is_the_worker(job):
        return False
    assert job.worker_pid is not None
    try:
        os.kill(job.worker_pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def unclaimed_for(job: IngestionJob, *, now: datetime, timeout: float) -> float | None:
    """Seconds a queued job has waited for a worker, once that is longer than the lease
    timeout (a worker that was going to claim it would have); None otherwise."""
    if job.status is not JobStatus.queued:
        return None
    since = job.queued_at or job.created_at
    waited = (now - since).total_seconds()
    return waited if waited > timeout else None


def describe_wait(seconds: float) -> str:
    """'unclaimed for 12 min' — how the faces mark such a job."""
    if seconds < 120:
        return f"unclaimed for {int(seconds)} s"
    if seconds < 2 * 3600:
        return f"unclaimed for {int(seconds // 60)} min"
    return f"unclaimed for {seconds / 3600:.1f} h"
