"""The `dask` executor: each step of a job runs as a task on a Dask cluster.

The job's worker (the lease holder, "the coordinator") keeps the lease, its heartbeat and
the step graph; `run_step` submits the step to the scheduler named by `dask_scheduler` as a
task that calls `runtime.run_step_days` with the job id, step id and lease epoch, and waits
for it, counting the step's checkpoints in the database to report each finished day. So
every day is fenced, checkpointed and cancellable exactly as with `inline`: the task stops
at the day boundary after a cancel, and a task whose coordinator lost the lease (or died, and
its job was taken over) writes nothing. A Dask retry after a worker died is safe for the
same reason: a day is idempotent and its checkpoint says it is done.

A task's writes prove the lease without keeping it alive (`StepTicket.remote`): only the
coordinator's own heartbeat does, so a dead coordinator's lease expires even while tasks it
submitted are still running, and those tasks are fenced out the moment the job ends.

Guard rails, checked before anything is written (`check`) and again by each task before it
writes: state must be in PostgreSQL; a worker that does not see this machine's home (on
another machine) needs shared artifacts (`artifacts_url = "s3://…"`) and must read every
source. With the embedded SQLite index, publish steps run here, where the index file lives,
while export and embed fan out.

One `distributed.Client` per scheduler address serves the whole process: the step scheduler
drives one executor per slot from its own thread, and a Client is safe to share.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import get_engine, hide_password, session_scope
from softcopy.errors import ConfigError, EnvironmentFault
from softcopy.ingestion.models import Checkpoint, IngestionJob, JobStep
from softcopy.ingestion.runtime import describe_fault, run_step_days
from softcopy.ingestion.scheduler import StepStopped, stop_path
from softcopy.ingestion.steps import (
    CancelRequested,
    LeaseLost,
    StageRunner,
    StepFailed,
    StepTicket,
)
from softcopy.ingestion.transitions import fence
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stages import Stage

CONNECT_TIMEOUT = 5.0  # seconds to reach the scheduler before it counts as unreachable
POLL_SECONDS = 0.25  # how often a waiting step counts its checkpoints (its progress)


class SchedulerUnreachable(EnvironmentFault):
    """The Dask scheduler named by `dask_scheduler` does not answer."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        super().__init__(
            f"Dask scheduler {address}",
            f"cannot be reached ({reason}); start one (`dask scheduler`) or set dask_scheduler "
            "in softcopy.toml (SOFTCOPY_DASK_SCHEDULER) to a running one",
        )


class SharedStorageNeeded(ConfigError):
    """The configuration would make a Dask worker write to its own machine's disk (or read a
    source it cannot see): the message says what to set."""

    def __init__(self, what: str, fix: str, worker: str | None = None) -> None:
        self.what = what
        self.fix = fix
        self.worker = worker
        where = f" on Dask worker {worker}" if worker else ""
        super().__init__(f"executor 'dask': {what}{where}: {fix}")


@dataclass(frozen=True)
class Probe:
    """What a Dask worker must see to run this job's steps: checked on each worker before a
    job starts and by each task before it writes (workers of an adaptive cluster come later)."""

    home: str | None  # artifacts are local: the worker must see their folder (same inode)
    home_inode: int | None
    sources: tuple[tuple[str, str], ...]  # (name, path) each worker must read

    def problem(self) -> SharedStorageNeeded | None:
        """Why this process cannot run the job's steps, or None."""
        if self.home is not None:
            try:
                same = os.stat(self.home).st_ino == self.home_inode
            except OSError:
                same = False
            if not same:
                return SharedStorageNeeded(
                    f"artifacts are local to {self.home} on the job's machine, which this "
                    "process does not see",
                    "set artifacts_url = 's3://bucket/prefix' in softcopy.toml "
                    "(SOFTCOPY_ARTIFACTS_URL) so that workers on other machines share artifacts",
                )
        for name, path in self.sources:
            if not os.path.exists(path):
                return SharedStorageNeeded(
                    f"source {name!r} ({path}) cannot be read",
                    "put it on a path every worker reads (a shared folder mounted at the same "
                    "place), or run the workers where it is",
                )
        return None


@dataclass(frozen=True)
class TaskOutcome:
    """How a step's task ended on its worker, as plain values: Dask returns it to the
    coordinator, which raises what `run_step_days` raised (errors themselves do not
    always survive pickling)."""

    kind: str  # done | cancelled | stopped | lease_lost | failed | refused
    worker: str
    days: int = 0
    day: date | None = None
    reason: str = ""


def scheduler_address(settings: Settings) -> str:
    address = getattr(settings, "dask_scheduler", None)
    if not address:
        raise ConfigError(
            "executor 'dask' needs a scheduler: set dask_scheduler = 'tcp://host:8786' in "
            "softcopy.toml (or SOFTCOPY_DASK_SCHEDULER)"
        )
    return str(address)


def artifacts_shared(settings: Settings) -> bool:
    """Are artifacts in storage every machine reaches (an object store)?"""
    return bool(getattr(settings, "artifacts_shared", False))


def index_shared(settings: Settings) -> bool:
    """Is the search index a server every machine reaches (PostgreSQL)?"""
    return bool(getattr(settings, "index_shared", False))


def require_shared_state(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        raise SharedStorageNeeded(
            f"state is in {hide_password(settings.database_url)}, a file on this machine",
            "set database_url = 'postgresql://…' in softcopy.toml (or SOFTCOPY_DATABASE_URL) "
            "so that Dask workers share the job's state",
        )


def probe_of(settings: Settings) -> Probe:
    home: str | None = None
    inode: int | None = None
    if not artifacts_shared(settings):
        # the artifacts' folder (the home by default): the nearest part of it that exists
        folder = Path(getattr(settings, "artifacts_root", settings.home))
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        home, inode = str(folder), os.stat(folder).st_ino
    sources = tuple((s.name, str(s.path)) for s in settings.selected_sources(None))
    return Probe(home=home, home_inode=inode, sources=sources)


# --- one Client per scheduler address, for the whole process --------------------------------

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client_for(address: str) -> Any:
    """The process's Client of the scheduler at `address` (connected on first use)."""
    from distributed import Client  # slow to import; inline jobs never need it

    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerUnreachable(address, _one_line(exc)) from None
        _clients[address] = client
        return client


def close_clients() -> None:
    """Disconnect from every scheduler (tests and benchmarks between clusters; at exit)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


atexit.register(close_clients)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else f"{text[:199]}…"


# --- the executor ---------------------------------------------------------------------------


class DaskExecutor:
    """Runs each step as a task on the Dask cluster at `settings.dask_scheduler`."""

    name = "dask"

    def __init__(self, stage_runner: StageRunner = run_stage) -> None:
        self.stage_runner = stage_runner  # pickled to the workers (by reference)
        self._probe: Probe | None = None
        self._linked: set[int] = set()  # jobs whose dashboard link is recorded

    def check(self, settings: Settings) -> None:
        """Refuse, before anything is written, what cannot work: no scheduler, an unreachable
        one, state in SQLite, or a worker that would write to its own disk or cannot read a
        source."""
        address = scheduler_address(settings)
        require_shared_state(settings)
        client = client_for(address)
        probe = probe_of(settings)
        try:
            found = client.run(_probe_worker, probe)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachable(address, _one_line(exc)) from None
        for worker, problem in sorted(found.items()):
            if problem is not None:
                raise SharedStorageNeeded(*problem, worker=worker)
        self._probe = probe

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        settings = ticket.settings
        if _stage_of(ticket) is Stage.publish and not index_shared(settings):
            # the embedded index is a file on this machine: its writes happen here
            _record_worker(ticket, f"{socket.gethostname()} (the job's machine: SQLite index)")
            run_step_days(ticket, stage_runner=self.stage_runner, on_day=on_day)
            return None
        if self._probe is None:
            self.check(settings)
        assert self._probe is not None
        client = client_for(scheduler_address(settings))
        self._link_dashboard(ticket, client)
        future = client.submit(
            run_task,
            settings,
            ticket.job_id,
            ticket.step_id,
            ticket.epoch,
            self.stage_runner,
            self._probe,
            key=f"softcopy-job{ticket.job_id}-step{ticket.step_id}-{uuid.uuid4().hex[:8]}",
            pure=False,
        )
        try:
            outcome = self._wait(client, future, ticket, on_day)
        finally:
            if not future.done():
                future.cancel()  # Ctrl-C here: the task is fenced out once the job ends
        return _returned(outcome, ticket)

    def close(self) -> None:
        pass  # the Client is the process's, shared by every job and slot

    def _wait(
        self, client: Any, future: Any, ticket: StepTicket, on_day: Callable[[], None] | None
    ) -> Any:
        from distributed import KilledWorker

        seen = _checkpoints(ticket)
        stop = stop_path(ticket.settings, ticket.job_id, ticket.epoch)
        relayed = False
        while True:
            if not relayed and stop.exists():  # the coordinator stops its running steps
                _stop_event(ticket, client).set()
                relayed = True
            try:
                outcome = future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                outcome = None
            except KilledWorker as exc:
                reason = f"the Dask workers that ran it died too often ({_one_line(exc)})"
                raise StepFailed(ticket.step_id, None, reason) from None
            except Exception as exc:  # the scheduler went away, or the task was cancelled
                reason = f"Dask lost the step's task: {describe_fault(exc)}"
                raise StepFailed(ticket.step_id, None, reason) from None
            now = _checkpoints(ticket)
            if on_day is not None:
                for _ in range(now - seen):
                    on_day()
            seen = max(seen, now)
            if outcome is not None:
                return outcome

    def _link_dashboard(self, ticket: StepTicket, client: Any) -> None:
        """Record the Dask dashboard on the job once (fenced: only the lease holder writes)."""
        if ticket.job_id in self._linked:
            return
        try:
            link = client.dashboard_link
        except (KeyError, AttributeError):
            link = None  # a scheduler without a dashboard (no bokeh there)
        engine = get_engine(ticket.settings.database_url)
        with session_scope(engine) as session:
            fence(session, job_id=ticket.job_id, epoch=ticket.epoch, now=ticket.clock())
            session.execute(
                update(IngestionJob)
                .where(IngestionJob.id == ticket.job_id)  # type: ignore[arg-type]
                .values(dask_dashboard=link)
            )
        self._linked.add(ticket.job_id)


def _returned(outcome: TaskOutcome, ticket: StepTicket) -> str | None:
    """What the task's outcome means here: None when done, else what run_step_days raised."""
    if outcome.kind == "done":
        return None
    if outcome.kind == "cancelled":
        raise CancelRequested(f"job {ticket.job_id}: cancel requested")
    if outcome.kind == "stopped":
        raise StepStopped(f"job {ticket.job_id}: step {ticket.step_id} stopped")
    if outcome.kind == "lease_lost":
        raise LeaseLost(ticket.job_id, ticket.epoch)
    if outcome.kind == "refused":
        what, fix = outcome.reason.split("\n", 1)
        raise SharedStorageNeeded(what, fix, worker=outcome.worker)
    raise StepFailed(ticket.step_id, outcome.day, outcome.reason)


# --- what runs on a Dask worker -------------------------------------------------------------


def run_task(
    settings: Settings,
    job_id: int,
    step_id: int,
    epoch: int,
    stage_runner: StageRunner,
    probe: Probe,
) -> TaskOutcome:
    """A step's days on a Dask worker: fenced and checkpointed by `run_step_days`, its writes
    proving (not renewing) the coordinator's lease."""
    worker = _worker_name()
    problem = probe.problem()
    if problem is not None:
        return TaskOutcome("refused", worker, reason=f"{problem.what}\n{problem.fix}")
    ticket = StepTicket(settings, job_id, step_id, epoch, remote=True)
    stop = _stop_event(ticket)
    try:
        _record_worker(ticket, worker)
        days = run_step_days(
            ticket,
            stage_runner=stage_runner,
            stop_requested=_at_most_every(POLL_SECONDS, stop.is_set),
        )
    except CancelRequested:
        return TaskOutcome("cancelled", worker)
    except StepStopped:
        return TaskOutcome("stopped", worker)
    except LeaseLost:
        return TaskOutcome("lease_lost", worker)
    except StepFailed as exc:
        return TaskOutcome("failed", worker, day=exc.day, reason=exc.reason)
    except Exception as exc:  # the machine under the step (its database, its disk), or a bug
        return TaskOutcome("failed", worker, reason=f"on {worker}: {describe_fault(exc)}")
    return TaskOutcome("done", worker, days=days)


def _stop_event(ticket: StepTicket, client: Any = None) -> Any:
    """The cluster-wide flag by which the coordinator stops its job's running tasks at their
    next day (its stop file is on its own machine)."""
    from distributed import Event

    return Event(f"softcopy-stop-job{ticket.job_id}-epoch{ticket.epoch}", client=client)


def _at_most_every(
    seconds: float, check: Callable[[], bool], clock: Callable[[], float] = time.monotonic
) -> Callable[[], bool]:
    """`check` asked again only once `seconds` have passed (it stays true once true): asking
    a Dask Event is a round trip to the scheduler, which on days of a few items was 13% of a
    task's time. The coordinator notices a stop only every POLL_SECONDS itself."""
    asked = -seconds
    answer = False

    def throttled() -> bool:
        nonlocal asked, answer
        now = clock()
        if not answer and now - asked >= seconds:
            asked, answer = now, check()
        return answer

    return throttled


def _probe_worker(probe: Probe) -> tuple[str, str] | None:
    """`check`'s question to each worker (through Client.run)."""
    problem = probe.problem()
    return None if problem is None else (problem.what, problem.fix)


def _worker_name() -> str:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"
    name = worker.name
    if isinstance(name, str) and name != worker.address:
        return f"{name} ({worker.address})"
    return str(worker.address)


def _record_worker(ticket: StepTicket, worker: str) -> None:
    """Say on the step which worker runs it, fenced like every write of the job."""
    engine = get_engine(ticket.settings.database_url)
    with session_scope(engine) as session:
        fence(
            session,
            job_id=ticket.job_id,
            epoch=ticket.epoch,
            now=ticket.clock(),
            remote=ticket.remote,
        )
        session.execute(
            update(JobStep)
            .where(JobStep.id == ticket.step_id)  # type: ignore[arg-type]
            .values(worker=worker)
        )


def _stage_of(ticket: StepTicket) -> Stage:
    engine = get_engine(ticket.settings.database_url)
    with Session(engine) as session:
        stage = session.scalar(select(JobStep.stage).where(JobStep.id == ticket.step_id))
    if stage is None:
        raise StepFailed(ticket.step_id, None, f"step {ticket.step_id} not found")
    return Stage(stage)


def _checkpoints(ticket: StepTicket) -> int:
    engine = get_engine(ticket.settings.database_url)
    with Session(engine) as session:
        count = session.scalar(
            select(func.count()).select_from(Checkpoint).where(Checkpoint.step_id == ticket.step_id)  # type: ignore[arg-type]
        )
    return int(count or 0)
