"""The step protocol: what runs one step of a job and how it ends. A leaf of the control
plane — the runtime (which drives steps), the executors (`executors` for `inline`,
`notebook_executors` for papermill and the warm kernel) and the service all import it, and
it imports none of them.

A step executor gets a `StepTicket` (the lease holder's job, step and epoch), runs the
step's remaining days and returns the step's artifact path, if any. It ends a step early
with `StepFailed` (a day failed), `CancelRequested` (a cancel at a day boundary) or
`LeaseLost` (another worker holds the job now). `close()` ends what the executor kept
between the steps of a job (a warm kernel) and is called once per job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from softcopy.config import Settings
from softcopy.db import utcnow
from softcopy.errors import OperationFailed, SoftcopyError
from softcopy.ingestion.transitions import LeaseLost as LeaseLost  # re-exported: part of it
from softcopy.memory.stage import StageContext, StageResult
from softcopy.memory.stages import Stage

# The work of one cell; `memory.pipeline.run_stage` is the real one, tests pass their own.
StageRunner = Callable[[StageContext, Stage, str, date], StageResult]

# The line a step prints per finished day inside a kernel (notebooks.step.DayTicker); the
# notebook executors count these lines to move the worker's progress while a step runs.
DAY_DONE = re.compile(r"^✓ day \d+ done", re.MULTILINE)


def day_done_line(day_number: int, seconds: float) -> str:
    return f"✓ day {day_number} done ({seconds:.2f} s)"


@dataclass(frozen=True)
class StepTicket:
    """What an executor needs to run one step of a job on behalf of a lease holder."""

    settings: Settings
    job_id: int
    step_id: int
    epoch: int
    # the lease holder's clock: heartbeats and checkpoints in this process use it (a kernel
    # of a notebook executor, in another process, uses the real one)
    clock: Callable[[], datetime] = utcnow
    # run by a task elsewhere (a Dask worker) for the lease holder: its writes prove the
    # lease but do not keep it alive (`transitions.fence(remote=True)`)
    remote: bool = False


class StepExecutor(Protocol):
    """A step executor (registered by name in the `softcopy.executors` registry)."""

    name: str

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        """Run the step's remaining days; return the step's artifact path, if any."""
        ...

    def close(self) -> None:
        """End what was kept between the steps of a job; called once the job's steps are
        over, however they ended."""
        ...


class StepFailed(OperationFailed):
    def __init__(self, step_id: int, day: date | None, reason: str) -> None:
        self.step_id = step_id
        self.day = day
        self.reason = reason
        super().__init__(reason)


class CancelRequested(SoftcopyError):
    """Raised at a day boundary when the job was asked to stop."""
