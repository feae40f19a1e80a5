"""A papermill engine that keeps its kernel running between notebooks.

Starting a kernel is nearly all of what one `papermill.execute_notebook` call costs
(about 1.3 s here); executing code in a running kernel costs milliseconds. The engine
`softcopy` runs each notebook in a `WarmKernel` that stays up: before each notebook it resets
the kernel's namespace (and execution count), so a notebook sees what it would see in a
fresh kernel, except that modules it imports are already imported.

A notebook's code cells go to the kernel in one execute request. nbclient sends one per cell
and waits for each one's reply and idle status: a round trip through the kernel's sockets
and threads per cell, 5-18 ms each on this machine, which was most of a small step's cost.
A helper installed in the kernel when it starts (`CELLS_HELPER`) resets the namespace, runs
the cells in order with IPython's `run_cell` (each as a cell of its own: its execution
count, outputs, traceback) and publishes a marker after each; what the kernel sends between
two markers is that cell's output. The first failing cell ends the notebook, as with nbclient.

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
import queue
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.engines import Engine, NotebookExecutionManager, papermill_engines
from papermill.log import logger

KERNEL_NAME = "python3"  # this environment's ipykernel, run with sys.executable
CELLS_MODULE = "_softcopy_cells"  # the helper's module in the kernel (in sys.modules)
CELL_END = "application/vnd.softcopy.cell-end+json"  # the marker's MIME type, never kept
# Installed in every kernel the engine starts. `run` first empties the namespace and sets the
# execution count to 1, as in a fresh kernel. IPython's reset() also runs a full
# gc.collect(), ~100 ms in a kernel that imported a database stack: skipped here (the
# collector still runs on its own thresholds).
CELLS_HELPER = """
import gc
import os
import sys
import threading


def run(cells):
    shell = get_ipython()
    collect, gc.collect = gc.collect, lambda generation=2: 0
    try:
        shell.reset(new_session=True)
    finally:
        gc.collect = collect
    progress = os.open(PROGRESS, os.O_WRONLY)
    try:
        for index, source in cells:
            if not run_one(shell, progress, index, source):
                return
    finally:
        os.close(progress)


def run_one(shell, progress, index, source):
    os.pwrite(progress, b"%10d" % index, 0)  # outlives a kill, unlike a message on its way
    result = shell.run_cell(source, store_history=True)
    error = result.error_before_exec or result.error_in_exec
    end = {"cell": index, "execution_count": result.execution_count, "ok": error is None}
    publish_end(shell, {CELL_END: end})
    return error is None


def io_thread():
    # ipykernel's IOPub thread, when both streams send through it
    thread = getattr(sys.stdout, "pub_thread", None)
    if thread is None or getattr(sys.stderr, "pub_thread", None) is not thread:
        return None
    if not all(hasattr(s, "_flush") for s in (sys.stdout, sys.stderr)):
        return None
    return thread


def publish_end(shell, data):
    # The end marker, sent after what the cell printed and before what the next one prints.
    # A stream's flush() waits for the IOPub thread, and publish() flushes both streams
    # after the two flushes here: four round trips between threads per cell. Instead the
    # streams' flushes and the marker's send are queued on that thread in this order, and
    # one wait covers them (without it the next cell's output could join this flush).
    pub, thread = shell.display_pub, io_thread()
    if thread is None or not hasattr(pub, "session"):
        pub.publish(data)  # not ipykernel's streams: flush them as IPython does
        return
    content = {"data": data, "metadata": {}, "transient": {}}
    msg = pub.session.msg("display_data", content, parent=pub.parent_header)
    for stream in (sys.stdout, sys.stderr):
        thread.schedule(stream._flush)  # it queues the stream's message: before the marker's
    thread.schedule(lambda: pub.session.send(pub.pub_socket, msg, ident=pub.topic))
    done = threading.Event()
    thread.schedule(done.set)  # after the marker's send is queued behind the streams'
    if not done.wait(10):  # the kernel's log (its stderr: the kernel log file), not a cell's
        shell.kernel.log.warning(
            "softcopy: cell %s's end marker sent without waiting for the IOPub thread (busy"
            " for 10 s): the next cell's first output may be counted as this cell's",
            data[CELL_END]["cell"],
        )
"""
# The helper as a module of the kernel's, made in a namespace of its own: no name is left
# in the kernel's namespace.
# It writes the index of the cell it starts to a progress file: a kernel killed by a cell
# drops the IOPub messages it had not sent yet (the previous cell's end among them), and the
# file still names the cell that killed it.
_INSTALL_BODY = (
    "import sys, types\n"
    f"module = types.ModuleType({CELLS_MODULE!r})\n"
    f"module.get_ipython, module.CELL_END = get_ipython, {CELL_END!r}\n"
    "module.PROGRESS = PROGRESS\n"
    f"exec(compile({CELLS_HELPER!r}, '<softcopy-cells>', 'exec'), module.__dict__)\n"
    "sys.modules[module.__name__] = module\n"
)


def install(progress: Path) -> str:
    """The code that installs the helper in a kernel, writing its progress to `progress`."""
    return (
        f"exec(compile({_INSTALL_BODY!r}, '<softcopy-install>', 'exec'),"
        f" {{'get_ipython': get_ipython, 'PROGRESS': {str(progress)!r}}})"
    )


LIVENESS_SECONDS = 1.0  # a wait for the kernel's output this long checks that it lives


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
        self.progress: Path | None = None  # the kernel writes the index of its running cell

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

    def shutdown(self, *, now: bool = False) -> None:
        """Stop the kernel (politely unless `now`) and release its channels and files."""
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            with contextlib.suppress(RuntimeError):  # it may be gone already
                run_sync(km.shutdown_kernel)(now=now)
        if self.progress is not None:
            self.progress.unlink(missing_ok=True)
            self.progress = None
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
        # beside the kernel's log when it has one (a killed worker leaves it there, not in /tmp)
        folder = self.log_path.parent if self.log_path is not None else None
        handle, name = tempfile.mkstemp(prefix="softcopy-cells-", suffix=".txt", dir=folder)
        os.close(handle)
        self.progress = Path(name)
        kc.execute(install(self.progress), silent=True, store_history=False)  # ahead of cells
        self.starts += 1


async def _kernel_info(kc: Any, timeout: float) -> dict[str, Any]:
    return await kc.kernel_info(reply=True, timeout=timeout)


class _Cells:
    """A notebook's run in a warm kernel: its code cells in one execute request, each cell's
    outputs and papermill's cell metadata filled in as the kernel's messages come."""

    def __init__(
        self,
        nb_man: NotebookExecutionManager,
        warm: WarmKernel,
        *,
        stdout_file: Any = None,
        stderr_file: Any = None,
        log_output: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.nb_man = nb_man
        self.nb = nb_man.nb
        self.warm = warm
        self.files = {"stdout": stdout_file, "stderr": stderr_file}
        self.log_output = log_output
        self.timeout = timeout
        self.code = [
            i
            for i, cell in enumerate(self.nb.cells)
            if cell.cell_type == "code" and cell.source.strip()
        ]
        self.started = 0  # the cells before this one are started (and completed)
        self.current: int | None = None  # the code cell running now
        self.clear_next = False  # a clear_output(wait=True) clears at the next output
        self.failed = False

    def run(self) -> None:
        if self.warm.progress is not None:
            self.warm.progress.write_bytes(b"")  # nothing from an earlier notebook
        if self.code:
            cells = [(i, self.nb.cells[i].source) for i in self.code]
            msg_id = self.warm.kc.execute(
                f"__import__({CELLS_MODULE!r}).run({cells!r})", silent=True, store_history=False
            )
            self._begin(self.code[0])
            run_sync(self._follow)(msg_id)
        if not self.failed:
            self._start_until(len(self.nb.cells))

    async def _follow(self, msg_id: str) -> None:
        """Take the kernel's messages for the request until it is idle, then its reply."""
        kc, began = self.warm.kc, time.monotonic()
        while True:
            try:
                msg = await kc.get_iopub_msg(timeout=LIVENESS_SECONDS)
            except queue.Empty:
                km = self.warm.km
                if km is None or not await km.is_alive():
                    raise DeadKernelError("Kernel died") from None
                if self.timeout is not None and time.monotonic() - began > self.timeout:
                    await km.interrupt_kernel()
                    cell = self.nb.cells[self.current if self.current is not None else 0]
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Cell execution timed out", self.timeout, cell
                    ) from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue  # e.g. the helper's installation
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status":
                if content["execution_state"] == "idle":
                    break
            elif kind == "display_data" and CELL_END in content.get("data", {}):
                self._end(content["data"][CELL_END])
                began = time.monotonic()
            elif self.current is not None:
                self._output(kind, content)
        while True:  # the request's reply: taken now, it does not wait for the next notebook
            reply = await kc.get_shell_msg(timeout=self.timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    def died_in(self, progress: Path | None) -> None:
        """After the kernel died: the cells its progress file says it completed before the
        one it was running count as completed (their end markers were lost with it)."""
        try:
            running = int(progress.read_bytes()) if progress is not None else None
        except (OSError, ValueError):  # no cell started
            running = None
        while self.current is not None and running is not None and self.current < running:
            self._end({"cell": self.current, "execution_count": None, "ok": True})

    def _start_until(self, index: int) -> None:
        """Start and complete the cells before `index` that do not run (markdown, empty)."""
        for i in range(self.started, index):
            self.nb_man.cell_start(self.nb.cells[i], i)
            self.nb_man.cell_complete(self.nb.cells[i], cell_index=i)
        self.started = max(self.started, index)

    def _begin(self, index: int) -> None:
        self._start_until(index)
        cell = self.nb.cells[index]
        self.nb_man.cell_start(cell, index)
        cell.outputs = []
        cell.execution_count = None
        self.current, self.started = index, index + 1

    def _end(self, end: dict[str, Any]) -> None:
        index = end["cell"]
        cell = self.nb.cells[index]
        cell.execution_count = end["execution_count"]
        if not end["ok"]:
            self.failed = True
            self.nb_man.cell_exception(cell, cell_index=index)
        self.nb_man.cell_complete(cell, cell_index=index)
        self.current = None
        following = [i for i in self.code if i > index]
        if end["ok"] and following:
            self._begin(following[0])

    def _output(self, kind: str, content: dict[str, Any]) -> None:
        assert self.current is not None
        outputs = self.nb.cells[self.current].outputs
        if kind == "clear_output":
            if content.get("wait"):
                self.clear_next = True
            else:
                outputs.clear()
            return
        if kind not in ("stream", "display_data", "execute_result", "error"):
            return  # update_display_data, comm messages: not a cell's output
        if self.clear_next:
            outputs.clear()
            self.clear_next = False
        if kind == "stream":
            name, text = content["name"], content["text"]
            target = self.files.get(name)
            if target is not None:
                target.write(text)
            if self.log_output:
                logger.info(text.rstrip("\n"))
            if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == name:
                outputs[-1].text += text  # one output per run of a stream, as nbclient's
                return
        outputs.append(_output_node(kind, content))


def _output_node(kind: str, content: dict[str, Any]) -> nbformat.NotebookNode:
    """nbformat's `output_from_msg` without its validation of every output (1.5 ms each
    here): the notebook is validated as a whole when papermill writes it."""
    keys = {
        "stream": ("name", "text"),
        "display_data": ("data", "metadata"),
        "execute_result": ("data", "metadata", "execution_count"),
        "error": ("ename", "evalue", "traceback"),
    }[kind]
    return nbformat.from_dict({"output_type": kind} | {key: content[key] for key in keys})


class SoftcopyEngine(Engine):
    """papermill engine `softcopy`: the cells in one request to a kernel that outlives the
    notebook."""

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
        cells = _Cells(
            nb_man,
            warm,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            log_output=log_output,
            timeout=execution_timeout,
        )
        try:
            cells.run()
            nb_man.nb.metadata["language_info"] = warm.language_info
            return nb_man.nb
        except DeadKernelError:
            cells.died_in(warm.progress)
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
