"""Where a step's days run. `inline` runs the stage functions in the worker process;
notebook engines (papermill, a warm kernel) run the same `runtime.run_step_days` inside a
kernel. A small registry, as papermill has for its engines."""

from __future__ import annotations

from collections.abc import Callable

from softcopy.errors import UserError
from softcopy.ingestion.notebook_engines import PapermillEngine, WarmNotebookEngine
from softcopy.ingestion.runtime import run_step_days

# the step protocol, re-exported: callers that register or wrap an executor use these
from softcopy.ingestion.steps import StageRunner as StageRunner
from softcopy.ingestion.steps import StepEngine as StepEngine
from softcopy.ingestion.steps import StepTicket as StepTicket
from softcopy.memory.pipeline import run_stage

# What the faces (CLI, API, dashboard) run jobs with: a warm kernel per job that keeps an
# executed notebook per step. The service's own default stays `inline` (no kernel), which
# is what library callers and the tests want.
DEFAULT_ENGINE = "notebook"


class InlineEngine:
    """Runs the days in this process: the default worker engine, and the reference."""

    name = "inline"

    def __init__(self, stage_runner: StageRunner = run_stage) -> None:
        self.stage_runner = stage_runner

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        run_step_days(ticket, stage_runner=self.stage_runner, on_day=on_day)
        return None

    def close(self) -> None:
        pass  # nothing is kept between steps


_ENGINES: dict[str, Callable[[], StepEngine]] = {
    "inline": InlineEngine,
    "papermill": PapermillEngine,  # papermill itself is imported on the first step
    "notebook": WarmNotebookEngine,
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
