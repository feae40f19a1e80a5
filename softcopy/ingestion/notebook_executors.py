"""Step executors that run a step as a notebook: `papermill` starts a kernel per step, as plain
papermill does; `notebook` keeps one warm kernel for all the steps of a job
(`warm_kernel.SoftcopyEngine`). Both execute `softcopy/notebooks/steps/<stage>.ipynb`, whose
one working cell calls `runtime.run_step_days` (what `inline` runs), and keep the executed
notebook at `<home>/runs/<job_id>/<step_id>-<stage>.ipynb` as the step's artifact.

A notebook step is an error boundary: the executed notebook is always written, then the
failure is raised naming the cell and the exception (`NotebookStepFailed`). A cancel or a
lost lease inside the kernel comes back as `CancelRequested` / `LeaseLost`, as with `inline`.

papermill and jupyter_client are imported on first use: they are slow to import, and
`inline` runs and the CLI's start never need them.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import get_engine, hide_password, session_scope
from softcopy.errors import UserError
from softcopy.ingestion.models import JobStep
from softcopy.ingestion.steps import DAY_DONE, CancelRequested, LeaseLost, StepFailed, StepTicket
from softcopy.ingestion.transitions import fence
from softcopy.memory.stages import Stage

# Where in the package the step notebooks ship, `<here>/<stage>.ipynb`: read as data
# through importlib.resources from the root package, so the `softcopy.notebooks` face (whose
# code, `notebooks.step`, runs in the kernel) is not imported here.
STEP_NOTEBOOKS = ("notebooks", "steps")

# papermill's logger ("papermill", which nbclient logs through) has no handler of its own, so
# without one Python's last-resort handler prints its errors on the CLI's stderr: "Kernel died
# while waiting for execute reply." after a Ctrl-C. Every such error also comes back as an
# exception, which the step reports; a handler the application configures still gets them.
logging.getLogger("papermill").addHandler(logging.NullHandler())


def skip_iri_formats() -> None:
    """Let jsonschema (nbformat's validator, imported with papermill) go without its "iri"
    format checks: when `rfc3987_syntax` is installed, jsonschema imports it, which builds
    38 lark grammars, ~2.7 s of the worker's first notebook step here (jupyter_server
    issue 1559). No notebook schema uses that format; a process that imported jsonschema
    already keeps what it has."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # import -> ImportError


class NotebookStepFailed(StepFailed):
    """A cell of a step notebook raised; the executed notebook shows where."""

    def __init__(
        self,
        step_id: int,
        *,
        cell_index: int,
        exec_count: int | None,
        ename: str,
        evalue: str,
        notebook: str,
    ) -> None:
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.notebook = notebook
        where = f"cell {cell_index}" + (f" (In [{exec_count}])" if exec_count else "")
        super().__init__(step_id, None, f"{where} raised {ename}: {evalue} — see {notebook}")


def run_notebook_path(home: Path, job_id: int, step_id: int, stage: str) -> Path:
    """Where a step's executed notebook is kept."""
    return home / "runs" / str(job_id) / f"{step_id}-{stage}.ipynb"


def step_notebook(stage: str) -> Traversable:
    """The step notebook of a stage (use `importlib.resources.as_file` for a real path)."""
    if stage not in set(Stage):
        stages = ", ".join(Stage)
        raise UserError(f"no step notebook for stage {stage!r}; stages: {stages}")
    return files("softcopy").joinpath(*STEP_NOTEBOOKS, f"{stage}.ipynb")


class PapermillExecutor:
    """One `papermill.execute_notebook` per step, each in a kernel of its own."""

    name = "papermill"

    def run_step(self, ticket: StepTicket, on_day: Callable[[], None] | None = None) -> str:
        skip_iri_formats()
        import papermill
        from nbclient.exceptions import DeadKernelError
        from papermill.exceptions import PapermillExecutionError

        stage = _stage_of(ticket)
        output = run_notebook_path(ticket.settings.home, ticket.job_id, ticket.step_id, stage)
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            with as_file(step_notebook(stage)) as source:
                papermill.execute_notebook(
                    str(source),
                    str(output),
                    parameters=_parameters(ticket),
                    progress_bar=False,
                    stdout_file=DayCounter(on_day),
                    coalesce_streams=True,  # the day lines as one output, not one each
                    **self.engine_options(ticket),
                )
        except PapermillExecutionError as exc:
            raise _translate(ticket, str(output), exc) from exc
        except DeadKernelError as exc:
            raise _translate(ticket, str(output), _dead_kernel_error(output)) from exc
        return str(output)

    def close(self) -> None:
        pass  # each step's kernel ended with the step

    def engine_options(self, ticket: StepTicket) -> dict[str, Any]:
        """papermill's own engine (nbclient); the kernel offered Curve encryption, as its
        kernelspec supports it, so its sockets are not plain TCP."""
        from traitlets.config import Config

        return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


class WarmNotebookExecutor(PapermillExecutor):
    """papermill with its `softcopy` engine: one kernel kept warm across a job's steps."""

    name = "notebook"

    _made = itertools.count(1)  # parallel slots each keep a kernel, each with its own log

    def __init__(self) -> None:
        self.kernel: Any = None  # a warm_kernel.WarmKernel, started by the first step
        self.number = next(self._made)

    def engine_options(self, ticket: StepTicket) -> dict[str, Any]:
        from softcopy.ingestion.warm_kernel import WarmKernel

        if self.kernel is None:
            settings = ticket.settings
            self.kernel = WarmKernel(
                env=kernel_env(settings),
                cwd=str(settings.home),
                log_path=settings.home / "logs" / f"kernel-job-{ticket.job_id}-{self.number}.log",
            )
        return {
            "engine_name": "softcopy",
            "kernel": self.kernel,
            "request_save_on_cell_execute": False,  # one write per step, at its end
        }

    def close(self) -> None:
        """End the job's kernel; call once the job's steps are over. It is idle then, and
        every day it did is committed, so it is stopped at once rather than asked to."""
        if self.kernel is not None:
            self.kernel.shutdown(now=True)
            self.kernel = None


def kernel_env(settings: Settings) -> dict[str, str]:
    """The worker's environment, with the settings it runs under spelled out for the kernel."""
    return os.environ | {
        "SOFTCOPY_HOME": str(settings.home),
        "SOFTCOPY_DATABASE_URL": settings.database_url,
        "SOFTCOPY_TIMEZONE": settings.timezone.key,
        "SOFTCOPY_LEASE_TIMEOUT": str(settings.lease_timeout),
    }


class DayCounter:
    """A file-like `stdout_file` for papermill: calls `on_day` for every day-done line the
    notebook prints (DayTicker), so the worker's progress moves while a step runs."""

    def __init__(self, on_day: Callable[[], None] | None) -> None:
        self.on_day = on_day
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if self.on_day is not None and DAY_DONE.match(line):
                self.on_day()
        return len(text)

    def flush(self) -> None:
        pass


def _parameters(ticket: StepTicket) -> dict[str, Any]:
    return {
        "job_id": ticket.job_id,
        "step_id": ticket.step_id,
        "epoch": ticket.epoch,
        "home": str(ticket.settings.home),
        "database_url": hide_password(ticket.settings.database_url),  # kept in the notebook
    }


def _stage_of(ticket: StepTicket) -> str:
    with Session(get_engine(ticket.settings.database_url)) as session:
        step = session.get(JobStep, ticket.step_id)
        if step is None:
            raise StepFailed(ticket.step_id, None, f"step {ticket.step_id} not found")
        return str(step.stage)


def _translate(ticket: StepTicket, notebook: str, exc: Any) -> Exception:
    """papermill's error (cell index, exception name and value) as the runtime's: a cancel
    or a lost lease inside the kernel means what it means in the worker."""
    if exc.ename == "LeaseLost":
        return LeaseLost(ticket.job_id, ticket.epoch)
    _keep_artifact(ticket, notebook)
    if exc.ename == "CancelRequested":
        return CancelRequested(exc.evalue)
    return NotebookStepFailed(
        ticket.step_id,
        cell_index=exc.cell_index,
        exec_count=exc.exec_count,
        ename=exc.ename,
        evalue=exc.evalue,
        notebook=notebook,
    )


def _keep_artifact(ticket: StepTicket, notebook: str) -> None:
    """Record a failed or cancelled step's notebook too (a finished step's is recorded by
    the runtime), fenced like every write of the lease holder."""
    with session_scope(get_engine(ticket.settings.database_url)) as session:
        fence(session, job_id=ticket.job_id, epoch=ticket.epoch, now=ticket.clock())
        session.execute(
            update(JobStep).where(JobStep.id == ticket.step_id).values(artifact=notebook)  # type: ignore[arg-type]
        )


def _dead_kernel_error(output: Path) -> Any:
    """papermill (nbclient) saved the notebook up to the cell the kernel died in; mark that
    cell and let papermill write its error markers and make its error."""
    import nbformat
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import raise_for_execution_errors

    from softcopy.ingestion.warm_kernel import mark_dead_kernel

    nb = nbformat.read(output, as_version=4)
    mark_dead_kernel(nb)
    try:
        raise_for_execution_errors(nb, str(output))
    except PapermillExecutionError as exc:
        return exc
    return PapermillExecutionError(0, None, "", "DeadKernelError", "the kernel died", [])
