"""Where a step's days run. `inline` runs the stage functions in the worker process;
notebook engines (papermill, a warm kernel) run the same `runtime.run_step_days` inside a
kernel. A small registry, as papermill has for its engines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from softcopy.config import Settings
from softcopy.db import utcnow
from softcopy.errors import UserError
from softcopy.ingestion.states import Stage
from softcopy.memory.pipeline import STAGE_FUNCTIONS
from softcopy.memory.stage import StageContext, StageResult

StageRunner = Callable[[StageContext, Stage, str, date], StageResult]

# What the faces (CLI, API, dashboard) run jobs with: a warm kernel per job that keeps an
# executed notebook per step. The service's own default stays `inline` (no kernel), which
# is what library callers and the tests want.
DEFAULT_ENGINE = "notebook"


def run_stage(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
    """The real work of one cell: the memory stage functions."""
    return STAGE_FUNCTIONS[stage](ctx, source, day)


@dataclass(frozen=True)
class StepTicket:
    """What an engine needs to run one step of a job on behalf of a lease holder."""

    settings: Settings
    job_id: int
    step_id: int
    epoch: int
    # the lease holder's clock: heartbeats and checkpoints in this process use it (a kernel
    # of a notebook engine, in another process, uses the real one)
    clock: Callable[[], datetime] = utcnow


class StepEngine(Protocol):
    name: str

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        """Run the step's remaining days; return the step's artifact path, if any."""
        ...


class InlineEngine:
    """Runs the days in this process: the default worker engine, and the reference."""

    name = "inline"

    def __init__(self, stage_runner: StageRunner = run_stage) -> None:
        self.stage_runner = stage_runner

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        from softcopy.ingestion.runtime import run_step_days

        run_step_days(ticket, stage_runner=self.stage_runner, on_day=on_day)
        return None


def _papermill() -> StepEngine:
    from softcopy.ingestion.notebook_engines import PapermillEngine  # slow imports: on use only

    return PapermillEngine()


def _notebook() -> StepEngine:
    from softcopy.ingestion.notebook_engines import WarmNotebookEngine

    return WarmNotebookEngine()


_ENGINES: dict[str, Callable[[], StepEngine]] = {
    "inline": InlineEngine,
    "papermill": _papermill,
    "notebook": _notebook,
}


def register(name: str, factory: Callable[[], StepEngine]) -> None:
    _ENGINES[name] = factory


def get_engine(name: str) -> StepEngine:
    try:
        return _ENGINES[name]()
    except KeyError:
        raise UserError(
            f"unknown engine {name!r}; engines: {', '.join(sorted(_ENGINES))}"
        ) from None


def engine_names() -> list[str]:
    return sorted(_ENGINES)
