"""Which steps of a job are ready (`Readiness`), kept apart from where a step runs (a
`Slot` driving an executor). The runtime's coordinator (`runtime.execute` with
`parallel` > 1) asks the first for ready steps and hands them to idle slots.

A job's steps form a graph: per (source, chunk of days) export → embed → publish, and
steps of different sources or chunks are independent. A step waits for every earlier step
(by ordinal) of its source whose days overlap its own, which keeps the order within each
(source, chunk) whatever the planner made.

A slot runs one step at a time, from a thread of the coordinator, on an executor of its
own (a warm kernel per slot for the notebook executor). An executor that runs steps in the
calling process (`in_process`, the inline executor) is given a *step process* per slot
instead (`ProcessSlot`): a persistent process started from a forkserver (never a fork of
the coordinator, which holds database connections and threads), so that CPU-bound stage
work runs on several cores. A step process exits when the coordinator dies (a lifeline
pipe, and the parent-death signal on Linux); what it writes is fenced by the lease epoch
anyway. Each day it finishes is reported to the coordinator, which counts cells.

A running step is asked to stop at its next day boundary through a *stop file* beside the
job's logs (`stop_path`), which `runtime.run_step_days` looks for before each day: it works
the same for a thread, a step process and a kernel.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from softcopy.config import Settings
from softcopy.errors import SoftcopyError
from softcopy.ingestion.steps import (
    CancelRequested,
    LeaseLost,
    StepExecutor,
    StepFailed,
    StepTicket,
)

PROCESS_START_TIMEOUT = 120.0  # seconds a step process may take to start (imports)
# What the forkserver imports once for every step process it forks: the runtime (with the
# stage functions) and the embedders. Naming `executors` alone no longer does since it
# imports them on first use (the dashboard's first paint), so each is listed here.
FORKSERVER_PRELOAD = [
    "softcopy.ingestion.executors",
    "softcopy.ingestion.runtime",
    "softcopy.memory.pipeline",
    "softcopy.memory.embedders",
]
_PR_SET_PDEATHSIG = 1


class StepStopped(SoftcopyError):
    """Raised at a day boundary when the coordinator asked the running steps to stop (a
    sibling step failed, the job was cancelled or interrupted): the days done are kept."""


def describe_fault(exc: BaseException) -> str:
    """One line for an exception: a database error without the SQL it was running."""
    if isinstance(exc, SoftcopyError):
        return str(exc)  # already one line that names what failed
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}"


# --- which steps are ready -------------------------------------------------------------


@dataclass(frozen=True)
class StepNode:
    id: int
    ordinal: int
    source: str
    start: date
    end: date


class Readiness:
    """The graph of a job's remaining steps: which may start now, in ordinal order."""

    def __init__(self, nodes: Iterable[StepNode]) -> None:
        ordered = sorted(nodes, key=lambda n: n.ordinal)
        self._ordinal = {n.id: n.ordinal for n in ordered}
        self._waiting_on: dict[int, set[int]] = {n.id: set() for n in ordered}
        self._dependents: dict[int, list[int]] = {n.id: [] for n in ordered}
        # per source, the earlier steps sorted by their last day: those that end on or
        # after a step's first day and start on or before its last overlap it
        by_end: dict[str, list[tuple[date, int, date]]] = {}
        for node in ordered:
            earlier = by_end.setdefault(node.source, [])
            first = bisect.bisect_left(earlier, (node.start, -1, date.min))
            for end, other, start in earlier[first:]:
                if start <= node.end and end >= node.start:
                    self._waiting_on[node.id].add(other)
                    self._dependents[other].append(node.id)
            bisect.insort(earlier, (node.end, node.id, node.start))
        self._ready = sorted(
            (n.id for n in ordered if not self._waiting_on[n.id]), key=self._ordinal.__getitem__
        )
        self._started: set[int] = set()
        self._finished: set[int] = set()

    def ready(self) -> list[int]:
        """Steps whose predecessors are all finished and that have not started."""
        return list(self._ready)

    def start(self, step_id: int) -> None:
        self._ready.remove(step_id)
        self._started.add(step_id)

    def finish(self, step_id: int) -> None:
        """The step is over (done or skipped): the steps waiting only on it become ready."""
        if step_id in self._ready:
            self._ready.remove(step_id)  # finished without being started (nothing to do)
        self._finished.add(step_id)
        for dependent in self._dependents[step_id]:
            waiting = self._waiting_on[dependent]
            waiting.discard(step_id)
            if not waiting:
                bisect.insort(self._ready, dependent, key=self._ordinal.__getitem__)

    def waits_on(self, step_id: int) -> set[int]:
        return set(self._waiting_on[step_id])

    @property
    def remaining(self) -> int:
        return len(self._ordinal) - len(self._finished)


# --- stopping the running steps at a day boundary --------------------------------------


def stop_path(settings: Settings, job_id: int, epoch: int) -> Path:
    return settings.home / "logs" / f"job-{job_id}-epoch-{epoch}.stop"


def request_stop(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def clear_stop(path: Path) -> None:
    path.unlink(missing_ok=True)


# --- where a step runs -----------------------------------------------------------------

# What a slot reports to the coordinator, on one queue: ("day", slot, step_id),
# ("ended", slot, step_id, outcome) and ("ready", slot, None).
Event = tuple[str, "Slot", Any]


@dataclass(frozen=True)
class Outcome:
    """How a step ended on a slot: `kind` ok | cancel | lost | failed | stopped | error."""

    kind: str
    artifact: str | None = None
    error: BaseException | None = None


def _outcome_of(exc: BaseException) -> Outcome:
    if isinstance(exc, CancelRequested):
        return Outcome("cancel", error=exc)
    if isinstance(exc, LeaseLost):
        return Outcome("lost", error=exc)
    if isinstance(exc, StepStopped):
        return Outcome("stopped", error=exc)
    if isinstance(exc, StepFailed):
        return Outcome("failed", error=exc)
    return Outcome("error", error=exc)


class Slot:
    """Runs one step at a time on its executor, from a thread of its own."""

    def __init__(self, executor: StepExecutor, events: queue.Queue[Event], number: int) -> None:
        self.executor = executor
        self.events = events
        self.number = number
        self.where = f"slot {number} ({executor.name}, in the worker)"
        self._inbox: queue.Queue[StepTicket | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"step-slot-{number}", daemon=True)
        self._closing = threading.Event()
        # a step was handed to this slot and its end is not reported yet (set before the
        # hand-over, cleared after the report): what a coordinator that stops must wait for
        self.busy = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, ticket: StepTicket) -> None:
        self.busy = True
        self._inbox.put(ticket)

    def _loop(self) -> None:
        self.prepare()
        self.events.put(("ready", self, None))
        while (ticket := self._inbox.get()) is not None:
            step_id = ticket.step_id

            def on_day(step_id: int = step_id) -> None:
                self.events.put(("day", self, step_id))

            try:
                outcome = Outcome("ok", artifact=self.run(ticket, on_day))
            except BaseException as exc:  # reported to the coordinator, which decides
                outcome = _outcome_of(exc)
            self.events.put(("ended", self, (step_id, outcome)))
            self.busy = False

    def prepare(self) -> None:
        """Made ready to take steps (a step process is started here)."""

    def run(self, ticket: StepTicket, on_day: Callable[[], None]) -> str | None:
        return self.executor.run_step(ticket, on_day=on_day)

    def close(self, *, owns_executor: bool = True) -> None:
        """End the slot once it is idle: its thread, then (when it is the slot's own) its
        executor."""
        self._closing.set()
        self._inbox.put(None)
        self._thread.join()
        if owns_executor:
            self.executor.close()


class ProcessSlot(Slot):
    """A slot whose in-process executor runs in a step process of its own.

    The executor is pickled to the process once; a ticket per step goes over a pipe, and
    each finished day comes back as a message. An executor or a ticket that cannot be
    pickled (a test's stand-in defined in a script) runs in the slot's thread instead."""

    def __init__(self, executor: StepExecutor, events: queue.Queue[Event], number: int) -> None:
        super().__init__(executor, events, number)
        self.process: multiprocessing.process.BaseProcess | None = None
        self._conn: Any = None
        self._lifeline: Any = None
        self.fallback: str | None = None  # why the steps run in the thread instead

    def prepare(self) -> None:
        try:
            payload = pickle.dumps(self.executor)
        except Exception as exc:  # a closure or a lambda: not for another process
            self.fallback = f"the executor cannot be pickled ({exc})"
            return
        context = _context()
        conn, child_conn = context.Pipe()
        lifeline_r, lifeline_w = context.Pipe(duplex=False)
        process = context.Process(
            target=step_process_main,
            args=(child_conn, lifeline_r, payload),
            name=f"softcopy-step-{self.number}",
            daemon=True,
        )
        try:
            process.start()
            message = self._first_message(conn, process)
        except (OSError, EOFError, RuntimeError) as exc:  # e.g. a main module without a guard
            message = ("unusable", describe_fault(exc))
        finally:
            child_conn.close()
            lifeline_r.close()
        if message[0] != "ready":
            self.fallback = f"the step process could not take the executor: {message[1]}"
            if process.pid is not None:
                process.kill()
                process.join()
            conn.close()
            lifeline_w.close()
            return
        self.process, self._conn, self._lifeline = process, conn, lifeline_w
        self.where = f"slot {self.number} ({self.executor.name}, step process {process.pid})"

    def _first_message(self, conn: Any, process: Any) -> tuple[Any, ...]:
        """ "ready", or why not, from a starting step process (given up when the slot is
        closed meanwhile: a short job may end before its step processes have started)."""
        waited = 0.0
        while not conn.poll(0.05):
            waited += 0.05
            if self._closing.is_set():
                return ("unusable", "the job ended before it started")
            if not process.is_alive() or waited > PROCESS_START_TIMEOUT:
                return ("unusable", f"it did not start (exit code {process.exitcode})")
        return conn.recv()

    def run(self, ticket: StepTicket, on_day: Callable[[], None]) -> str | None:
        if self._conn is None:
            return super().run(ticket, on_day)
        try:
            message = pickle.dumps(ticket)
        except Exception:  # e.g. a test's clock: this step runs in the thread
            return super().run(ticket, on_day)
        try:
            self._conn.send_bytes(message)
            while True:
                reply = self._conn.recv()
                if reply[0] == "day":
                    on_day()
                    continue
                return _reply_result(ticket, reply)
        except (EOFError, OSError) as exc:  # the step process died under the step
            self._forget_process()
            raise StepFailed(
                ticket.step_id, None, f"the step process of slot {self.number} died: {exc!r}"
            ) from None

    def _forget_process(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
        for end in (self._conn, self._lifeline):
            if end is not None:
                with contextlib.suppress(OSError):
                    end.close()
        self.process = self._conn = self._lifeline = None

    def close(self, *, owns_executor: bool = True) -> None:
        self._closing.set()
        self._inbox.put(None)
        self._thread.join()  # idle, or still starting its process (it gives up: closing)
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(b"")  # the end: it closes its executor and exits
            assert self.process is not None
            self.process.join(10)
        self._forget_process()
        if owns_executor:
            self.executor.close()


def _reply_result(ticket: StepTicket, reply: tuple[Any, ...]) -> str | None:
    kind = reply[0]
    if kind == "done":
        return reply[1]
    if kind == "cancel":
        raise CancelRequested(reply[1])
    if kind == "lost":
        raise LeaseLost(ticket.job_id, ticket.epoch)
    if kind == "stopped":
        raise StepStopped(reply[1])
    if kind == "failed":
        raise StepFailed(reply[1], reply[2], reply[3])
    raise StepFailed(ticket.step_id, None, reply[1])


_context_lock = threading.Lock()


def _context() -> multiprocessing.context.BaseContext:
    """The forkserver: a clean process that imports the runtime once, then forks a step
    process per slot (the coordinator itself is never forked)."""
    with _context_lock:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        return context


def _die_with_parent(lifeline: Any) -> None:
    """Exit as soon as the coordinator is gone, even in the middle of a day."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()  # nothing is ever sent: returns when the other end closes
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def step_process_main(conn: Any, lifeline: Any, payload: bytes) -> None:
    """A step process: take the executor, then run one step per ticket until told to end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the coordinator's to handle
    _die_with_parent(lifeline)
    try:
        executor: StepExecutor = pickle.loads(payload)
    except Exception as exc:
        conn.send(("unusable", describe_fault(exc)))
        return
    conn.send(("ready",))
    try:
        while message := conn.recv_bytes():
            ticket: StepTicket = pickle.loads(message)
            conn.send(_run_here(executor, ticket, lambda: conn.send(("day",))))
    except EOFError:
        pass  # the coordinator is gone
    finally:
        executor.close()


def _run_here(executor: StepExecutor, ticket: StepTicket, on_day: Callable[[], None]) -> tuple:  # type: ignore[type-arg]
    try:
        return ("done", executor.run_step(ticket, on_day=on_day))
    except CancelRequested as exc:
        return ("cancel", str(exc))
    except LeaseLost:
        return ("lost",)
    except StepStopped as exc:
        return ("stopped", str(exc))
    except StepFailed as exc:
        return ("failed", exc.step_id, exc.day, exc.reason)
    except Exception as exc:  # the machine under the step, or a bug: the step's failure
        return ("error", describe_fault(exc))


def make_slot(
    executor: StepExecutor, events: queue.Queue[Event], number: int, *, own_process: bool
) -> Slot:
    """A slot for `executor`: a step process of its own for an in-process executor when
    `own_process`, else the slot's thread drives it."""
    if own_process and getattr(executor, "in_process", False):
        return ProcessSlot(executor, events, number)
    return Slot(executor, events, number)
