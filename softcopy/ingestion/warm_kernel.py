"""A papermill engine that keeps its kernel running between notebooks.

Starting a kernel is nearly all of what one `papermill.execute_notebook` call costs
(about 1.3 s here); executing code in a running kernel costs milliseconds. The engine
`softcopy` runs each notebook in a `WarmKernel` that stays up: before each notebook it resets
the kernel's namespace (and execution count), so a notebook sees what it would see in a
fresh kernel, except that modules it imports are already imported.

    papermill in.ipynb out.ipynb --engine softcopy     # via the papermill.engine entry point
                                                       # (papermill_entry, a stand-in)

softcopy's `notebook` step executor passes its own kernel (`kernel=`), one per job, and shuts
it down when the job ends; without one, a kernel per kernel name is shared by the process
and shut down at exit. A kernel that dies mid-notebook is reported like any failed cell
(papermill's own error, ename `DeadKernelError`) and the next notebook starts a fresh one.

This module imports no softcopy state: papermill loads it through its entry point
(`papermill_entry`, which imports this module on first use).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine, NotebookExecutionManager, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

KERNEL_NAME = "python3"  # this environment's ipykernel, run with sys.executable
# An empty namespace and execution count 1, as in a fresh kernel. IPython's reset() also runs
# a full gc.collect(), ~100 ms in a kernel that imported a database stack: skipped here (the
# collector still runs on its own thresholds). It runs in a namespace of its own, which
# reset() cannot clear from under it.
RESET = """exec(compile('''
import gc
collect, gc.collect = gc.collect, lambda generation=2: 0
try:
    get_ipython().reset(new_session=True)
finally:
    gc.collect = collect
''', "<softcopy-reset>", "exec"), {"get_ipython": get_ipython})"""


class WarmKernel:
    """One kernel kept running across notebooks: started on first use, restarted after it dies."""

    def __init__(
        self,
        kernel_name: str = KERNEL_NAME,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.kernel_name = kernel_name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        self.km: AsyncKernelManager | None = None
        self.kc: Any = None
        self.language_info: dict[str, Any] = {}
        self.starts = 0  # how many kernels this has started (tests and benchmarks read it)
        self._log: BinaryIO | None = None

    @property
    def pid(self) -> int | None:
        provisioner = self.km.provisioner if self.km is not None else None
        process = getattr(provisioner, "process", None)
        return process.pid if process is not None else None

    def alive(self) -> bool:
        return self.km is not None and bool(run_sync(self.km.is_alive)())

    def ensure(self, timeout: float = 60) -> None:
        """A running kernel with a connected client: the one we have, or a fresh one."""
        if self.kc is not None and self.alive():
            return
        self.shutdown(now=True)
        self._start(timeout)

    def reset(self) -> None:
        """Queue a namespace reset ahead of the next notebook's cells. Nothing waits for its
        reply: the kernel runs requests in order, and nbclient ignores replies it did not ask
        for, so a reset costs no round trip."""
        assert self.kc is not None
        self.kc.execute(RESET, silent=True, store_history=False)

    def shutdown(self, *, now: bool = False) -> None:
        """Stop the kernel (politely unless `now`) and release its channels and files."""
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            with contextlib.suppress(RuntimeError):  # it may be gone already
                run_sync(km.shutdown_kernel)(now=now)
        if self._log is not None:
            self._log.close()
            self._log = None
            if self.log_path is not None and self.log_path.stat().st_size == 0:
                self.log_path.unlink(missing_ok=True)  # the kernel had nothing to say

    def _start(self, timeout: float) -> None:
        km = AsyncKernelManager(kernel_name=self.kernel_name, transport_encryption="auto")
        km.shutdown_wait_time = 2.0
        options: dict[str, Any] = {"extra_arguments": ["--HistoryManager.hist_file=:memory:"]}
        if self.env is not None:
            options["env"] = self.env
        if self.cwd is not None:
            options["cwd"] = self.cwd
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            options |= {"stdout": self._log, "stderr": subprocess.STDOUT}
        run_sync(km.start_kernel)(**options)
        kc = km.client()
        kc.start_channels()
        self.km, self.kc = km, kc
        try:
            run_sync(kc.wait_for_ready)(timeout=timeout)
            reply = run_sync(_kernel_info)(kc, timeout)
        except BaseException:
            self.shutdown(now=True)
            raise
        self.language_info = reply["content"].get("language_info", {})
        self.starts += 1


async def _kernel_info(kc: Any, timeout: float) -> dict[str, Any]:
    return await kc.kernel_info(reply=True, timeout=timeout)


class _WarmClient(PapermillNotebookClient):
    """papermill's client, on a kernel and client that it neither starts nor stops."""

    def execute_warm(self, language_info: dict[str, Any]) -> nbformat.NotebookNode:
        self.reset_execution_trackers()
        with self.setup_kernel():  # km has a kernel and kc is set: nothing to start or stop
            self.papermill_execute_cells()
        self.nb.metadata["language_info"] = language_info
        self.set_widgets_metadata()
        return self.nb


class SoftcopyEngine(Engine):
    """papermill engine `softcopy`: nbclient execution in a kernel that outlives the notebook."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: NotebookExecutionManager,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        kernel: WarmKernel | None = None,
        **kwargs: Any,
    ) -> nbformat.NotebookNode:
        warm = kernel if kernel is not None else shared_kernel(kernel_name or KERNEL_NAME)
        warm.ensure(start_timeout)
        warm.reset()
        options = merge_kwargs(
            remove_args(["input_path", "timeout", "startup_timeout"], **kwargs),
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=warm.kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = _WarmClient(nb_man, km=warm.km, **options)
        client.kc = warm.kc
        try:
            return client.execute_warm(warm.language_info)
        except DeadKernelError:
            warm.shutdown(now=True)  # the next notebook starts a fresh kernel
            mark_dead_kernel(nb_man.nb)  # papermill then raises it like any failed cell
            return nb_man.nb
        except BaseException:
            warm.shutdown(now=True)  # e.g. Ctrl-C: the cell must not run on unattended
            raise


def mark_dead_kernel(nb: nbformat.NotebookNode) -> int | None:
    """Mark the cell that was running when the kernel died as failed, with an error output
    papermill reports (`raise_for_execution_errors`); the cell's index, if one was running."""
    started = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if not started:
        return None
    index = started[-1]
    cell = nb.cells[index]
    cell.setdefault("outputs", []).append(
        nbformat.v4.new_output(
            "error",
            ename="DeadKernelError",
            evalue="the kernel died while this cell ran",
            traceback=["DeadKernelError: the kernel died while this cell ran"],
        )
    )
    cell.metadata.papermill.update(exception=True, status="failed")
    nb.metadata.papermill["exception"] = True
    return index


_SHARED: dict[str, WarmKernel] = {}


def shared_kernel(kernel_name: str) -> WarmKernel:
    """The process's kernel for `kernel_name` (papermill's CLI and library calls use these)."""
    if kernel_name not in _SHARED:
        _SHARED[kernel_name] = WarmKernel(kernel_name, env=os.environ)
    return _SHARED[kernel_name]


@atexit.register
def _shutdown_shared() -> None:
    for kernel in _SHARED.values():
        kernel.shutdown(now=True)
    _SHARED.clear()


papermill_engines.register("softcopy", SoftcopyEngine)
