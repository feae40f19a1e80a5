"""Where a step's days run. `inline` runs the stage functions in the worker process;
the notebook executors (papermill, a warm kernel) run the same `runtime.run_step_days`
inside a kernel. They are found by name in the `softcopy.executors` registry
(softcopy.registry, filled from entry points as papermill fills its engines).

Naming executors (`executor_names`, `DEFAULT_EXECUTOR`: the dashboard's Plan tab, built
right after the first paint) imports no stage code: the runtime and the stage functions
(numpy, the embedders) are imported when an inline step runs."""

from __future__ import annotations

from collections.abc import Callable

from softcopy.config import Settings
from softcopy.errors import UnknownExecutor

# the step protocol, re-exported: callers that register or wrap an executor use these
from softcopy.ingestion.steps import StageRunner as StageRunner
from softcopy.ingestion.steps import StepExecutor as StepExecutor
from softcopy.ingestion.steps import StepTicket as StepTicket
from softcopy.registry import EXECUTORS

# What the faces (CLI, API, dashboard) run jobs with: a warm kernel per job that keeps an
# executed notebook per step. The service's own default stays `inline` (no kernel), which
# is what library callers and the tests want.
DEFAULT_EXECUTOR = "notebook"


def _default_runner() -> StageRunner:
    """The stage functions (`pipeline.run_stage`), imported when an executor is made."""
    from softcopy.memory.pipeline import run_stage

    return run_stage


class InlineExecutor:
    """Runs the days in this process: the default worker executor, and the reference."""

    name = "inline"
    # its steps run in the calling process: with parallel steps, the scheduler gives each
    # further slot a step process of its own to run them in (scheduler.ProcessSlot)
    in_process = True

    def __init__(self, stage_runner: StageRunner | None = None) -> None:
        self.stage_runner: StageRunner = (
            stage_runner if stage_runner is not None else _default_runner()
        )

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str | None:
        from softcopy.ingestion.runtime import run_step_days

        run_step_days(ticket, stage_runner=self.stage_runner, on_day=on_day)
        return None

    def close(self) -> None:
        pass  # nothing is kept between steps


def get_executor(name: str) -> StepExecutor:
    """A new executor of the registered kind `name` (one per job: it may keep a kernel)."""
    factory = EXECUTORS.get(name)
    if factory is None:
        raise UnknownExecutor(name, EXECUTORS.names())
    return factory()


def check_executor(name: str, settings: Settings) -> None:
    """Refuse, before anything is written, an executor that is unknown or cannot run with
    these settings (an executor may define `check(settings)`: dask needs a reachable
    scheduler, shared state and storage its workers see)."""
    executor = get_executor(name)
    try:
        check = getattr(executor, "check", None)
        if check is not None:
            check(settings)
    finally:
        executor.close()


def executor_names() -> list[str]:
    return EXECUTORS.names()
