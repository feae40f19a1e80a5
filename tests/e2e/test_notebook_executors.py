"""The notebook executors end to end, with real kernels: `papermill` (a kernel per step) and
`notebook` (one warm kernel per job) index exactly what `inline` does, keep one executed
notebook per step, keep a failing step's notebook with its error cell marked, and survive a
SIGKILL of the worker mid-job like `inline` does."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest
from sqlmodel import Session, func, select

from softcopy.cli.main import main
from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.demo import build_demo
from softcopy.ingestion import service
from softcopy.ingestion.models import Checkpoint
from softcopy.ingestion.states import JobStatus, PlanMode, Stage, StepStatus
from softcopy.memory import index
from softcopy.serialize import jsonable
from tests.conftest import DEMO_TODAY

ERROR_TAG = "papermill-error-cell-tag"  # papermill's marker cells around a failed cell


def backfill(*sources: str) -> service.PlanOptions:
    return service.PlanOptions(
        mode=PlanMode.backfill_range,
        sources=list(sources) or None,
        range_start_day=DEMO_TODAY - timedelta(days=29),
        range_end_day=DEMO_TODAY,
    )


def index_rows(home: Path) -> list[tuple[str, str, str, str]]:
    with index.connect(home / "index.db") as conn:
        return sorted(conn.execute("SELECT source, day, item_id, content_hash FROM docs"))


def inline_index(home: Path, options: service.PlanOptions, chunk_days: int) -> list[tuple]:
    """What `inline` makes of the same demo archive and plan, on its own SQLite."""
    build_demo(home, days=30, today=DEMO_TODAY)
    settings = load_settings(home, env={})
    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    outcome = service.run(ctx, options=options, chunk_days=chunk_days)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    return index_rows(home)


def assert_one_notebook_per_step(home: Path, job: dict, steps: list[dict]) -> None:
    """Every step that ran kept `<home>/runs/<job>/<step>-<stage>.ipynb`; nothing else is there."""
    runs = home / "runs" / str(job["id"])
    names = {f"{s['step']['id']}-{s['step']['stage']}.ipynb" for s in steps}
    ran = [s["step"] for s in steps if s["step"]["status"] == "succeeded"]
    assert ran and {p.name for p in runs.iterdir()} <= names
    for step in ran:
        assert step["artifact"] == str(runs / f"{step['id']}-{step['stage']}.ipynb")
        nb = nbformat.read(step["artifact"], as_version=4)
        assert not nb.metadata.papermill.exception
        summary = next(c for c in nb.cells if "summary" in c.metadata.get("tags", []))
        assert "days done" in summary.outputs[0]["data"]["text/plain"]


def test_papermill_and_notebook_backfills_index_what_inline_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI end to end: `run --executor papermill` and `run --executor notebook`, side by side
    on two copies of the demo archive, then `show` (its artifacts)."""
    for name in [k for k in os.environ if k.startswith("SOFTCOPY_")]:
        monkeypatch.delenv(name)
    start, end = DEMO_TODAY - timedelta(days=29), DEMO_TODAY
    runs = {}
    for executor in ("papermill", "notebook"):
        home = tmp_path / executor
        build_demo(home, days=30, today=DEMO_TODAY)
        runs[executor] = subprocess.Popen(
            [sys.executable, "-m", "softcopy", "ingestion", "run", "--mode", "backfill_range",
             "--source", "notes", "--range-start-day", start.isoformat(),
             "--range-end-day", end.isoformat(), "--chunk-days", "30", "--executor", executor,
             "--home", str(home), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    reference = inline_index(tmp_path / "inline", backfill("notes"), chunk_days=30)
    for executor, process in runs.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, out + err
        home = tmp_path / executor
        view = json.loads(out)["job"]
        assert view["job"]["status"] == "succeeded" and view["job"]["executor"] == executor
        assert len(view["steps"]) == 3
        assert_one_notebook_per_step(home, view["job"], view["steps"])
        assert sorted(p.name for p in (home / "runs" / str(view["job"]["id"])).iterdir()) == [
            f"{s['step']['id']}-{s['step']['stage']}.ipynb" for s in view["steps"]
        ]
        assert index_rows(home) == reference, executor
        assert (
            main(["ingestion", "show", str(view["job"]["id"]), "--home", str(home), "--json"]) == 0
        )
        shown = json.loads(capsys.readouterr().out)
        assert [s["step"]["artifact"] for s in shown["steps"]] == [
            s["step"]["artifact"] for s in view["steps"]
        ]


@pytest.mark.parametrize("executor", ["papermill", "notebook"])
def test_a_failing_step_keeps_its_notebook_with_the_error_cell_marked(ctx, executor: str) -> None:
    queued = service.enqueue(ctx, options=backfill("chat"), executor=executor, chunk_days=30)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    victim = ctx.settings.home / "sources" / "chat.jsonl"
    lines = victim.read_text().splitlines(keepends=True)
    # After the plan's scan, a record of the first day gets a text that is not text (same
    # length, so every other record stays where the scan saw it): that export fails.
    record = json.loads(lines[0])
    spoiled = json.dumps({**record, "text": 5})
    lines[0] = spoiled + " " * (len(lines[0]) - len(spoiled) - 1) + "\n"
    victim.write_text("".join(lines))

    kernels = set(kernels_of(os.getpid()))
    service.work(ctx, once=True, job_id=job_id)
    assert set(kernels_of(os.getpid())) <= kernels  # the job's kernel ended with the job
    view = service.show_job(ctx, job_id=job_id)
    assert view.job.status is JobStatus.failed
    failed = view.steps[0].step
    assert failed.status is StepStatus.failed and failed.stage is Stage.export
    for error in (view.job.error, failed.error):
        assert error and error.startswith("cell 3 (In [3]) raised StepFailed: ")
        assert victim.name in error and failed.artifact in error
    nb = nbformat.read(failed.artifact, as_version=4)  # kept, and listed on the step
    markers = [c for c in nb.cells if ERROR_TAG in c.metadata.get("tags", [])]
    assert len(markers) == 2  # papermill's banner at the top and its anchor at the cell
    cell = next(c for c in nb.cells if "run-step" in c.metadata.get("tags", []))
    assert cell.metadata.papermill["status"] == "failed" and cell.metadata.papermill["exception"]
    assert [o["ename"] for o in cell.outputs if o["output_type"] == "error"] == ["StepFailed"]
    assert nb.cells[nb.cells.index(cell) - 1] is markers[1]


def test_a_cancel_or_a_lost_lease_inside_the_kernel_means_what_it_means_inline(ctx) -> None:
    from softcopy.ingestion.executors import StepTicket
    from softcopy.ingestion.notebook_executors import WarmNotebookExecutor
    from softcopy.ingestion.runtime import CancelRequested, claim
    from softcopy.ingestion.transitions import LeaseLost

    queued = service.enqueue(ctx, options=backfill("notes"), executor="notebook", chunk_days=30)
    assert queued.job is not None and queued.job.job.id is not None
    job_id, step = queued.job.job.id, queued.job.steps[0].step
    claimed = claim(ctx.settings, owner="test", job_id=job_id, now=ctx.clock())
    assert claimed is not None
    ticket = StepTicket(ctx.settings, job_id, step.id or 0, claimed[1])
    executor = WarmNotebookExecutor()
    try:
        service.cancel(ctx, job_id=job_id)  # honoured at the step's first day boundary
        with pytest.raises(CancelRequested):
            executor.run_step(ticket)
        kept = service.show_job(ctx, job_id=job_id).steps[0].step.artifact
        assert kept is not None
        cell = next(
            c
            for c in nbformat.read(kept, as_version=4).cells
            if "run-step" in c.metadata.get("tags", [])
        )
        assert [o["ename"] for o in cell.outputs if o["output_type"] == "error"] == [
            "CancelRequested"
        ]
        service.cancel(ctx, job_id=job_id, force=True)  # fences this worker out
        with pytest.raises(LeaseLost):
            executor.run_step(ticket)
        assert executor.kernel.starts == 1  # one warm kernel served both
        assert checkpoints(ctx, job_id) == 0
    finally:
        executor.close()
    assert executor.kernel is None


KILLS = {  # executor: (sources, chunk days); papermill starts a kernel per step, so fewer steps
    "papermill": (("notes",), 30),
    "notebook": ((), 15),
}


@pytest.mark.parametrize("executor", sorted(KILLS))
def test_sigkill_of_the_worker_mid_job_then_resume(
    ctx, database_url: str, tmp_path: Path, executor: str
) -> None:
    if executor == "papermill" and not database_url.startswith("sqlite"):
        pytest.skip("a kernel per step is slow: the notebook executor covers PostgreSQL")
    sources, chunk_days = KILLS[executor]
    reference = inline_index(tmp_path / "inline", backfill(*sources), chunk_days)
    queued = service.enqueue(
        ctx, options=backfill(*sources), executor=executor, chunk_days=chunk_days
    )
    assert queued.job is not None and queued.job.job.id is not None
    job_id, total = queued.job.job.id, queued.job.job.cells_total
    kill_at = random.Random(executor).randint(1, total // 2)
    worker = subprocess.Popen(
        [sys.executable, "-m", "softcopy", "ingestion", "worker", "--job-id", str(job_id)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180  # a kernel per step, on a loaded machine
    while checkpoints(ctx, job_id) < kill_at:
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)  # while its kernel runs a step
    worker.wait()
    assert wait_for_no_kernel_of(worker.pid), "the dead worker's kernel is still running"
    assert checkpoints(ctx, job_id) < total, "the job finished before the worker was killed"

    resumed = service.resume(ctx, job_id=job_id)  # what `softcopy ingestion resume` calls
    assert resumed.job.status is JobStatus.succeeded
    assert resumed.job.cells_done == total == checkpoints(ctx, job_id)
    view = jsonable(resumed)
    assert_one_notebook_per_step(ctx.settings.home, view["job"], view["steps"])
    assert service.verify(ctx, job_id=job_id).ok
    assert index_rows(ctx.settings.home) == reference


def checkpoints(ctx: service.Context, job_id: int) -> int:
    with Session(ctx.engine) as session:
        query = select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == job_id)
        return session.exec(query).one()


def wait_for_no_kernel_of(parent_pid: int, seconds: float = 10) -> bool:
    """A kernel watches the process that started it (JPY_PARENT_PID) and exits after it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not kernels_of(parent_pid):
            return True
        time.sleep(0.1)
    return False


def kernels_of(parent_pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"JPY_PARENT_PID={parent_pid}".encode() in environ:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def warm_kernel():
    from softcopy.ingestion.warm_kernel import WarmKernel

    kernel = WarmKernel()
    yield kernel
    kernel.shutdown(now=True)


def run_warm(kernel, tmp_path: Path, *sources: str, name: str = "out") -> nbformat.NotebookNode:
    """Run a notebook of these cells through papermill's `softcopy` engine on `kernel`."""
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    source = tmp_path / f"{name}-in.ipynb"
    nbformat.write(nb, source)
    return papermill.execute_notebook(
        str(source),
        str(tmp_path / f"{name}.ipynb"),
        engine_name="softcopy",
        kernel=kernel,
        progress_bar=False,
        request_save_on_cell_execute=False,
    )


def test_the_warm_kernel_resets_the_namespace_but_keeps_imports(warm_kernel, tmp_path) -> None:
    run_warm(warm_kernel, tmp_path, "import colorsys\nleaked = 42", "leaked", name="first")
    pid, starts = warm_kernel.pid, warm_kernel.starts
    nb = run_warm(
        warm_kernel,
        tmp_path,
        "import sys\nassert 'leaked' not in globals() and 'colorsys' in sys.modules",
        "import os\nos.getpid()",
        name="second",
    )
    assert (warm_kernel.pid, warm_kernel.starts) == (pid, starts)  # the same kernel
    assert [c.execution_count for c in nb.cells] == [1, 2]  # counted as in a fresh kernel
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == str(pid)
    assert sys.executable in Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def test_the_cells_sent_together_keep_their_own_outputs_and_stop_at_a_failure(
    warm_kernel, tmp_path
) -> None:
    """One request runs all the cells: each cell still gets its own outputs, count and
    status, streams coalesced per cell; a failing cell stops the later ones unrun."""
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as failed:
        run_warm(
            warm_kernel,
            tmp_path,
            "print('a')\nprint('b')",
            "from IPython.display import display\ndisplay('shown')\n6 * 7",
            "import sys\nprint('to stderr', file=sys.stderr)\nraise ValueError('no')",
            "print('never')",
        )
    assert (failed.value.cell_index, failed.value.ename) == (2, "ValueError")
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and ERROR_TAG not in c.metadata.tags]
    assert [c.execution_count for c in cells] == [1, 2, 3, None]
    assert [(o.output_type, o.get("text")) for o in cells[0].outputs] == [("stream", "a\nb\n")]
    kinds = [(o.output_type, o.get("data", {}).get("text/plain")) for o in cells[1].outputs]
    assert kinds == [("display_data", "'shown'"), ("execute_result", "42")]
    assert [o.output_type for o in cells[2].outputs] == ["stream", "error"]
    assert cells[2].outputs[1].evalue == "no"
    status = [c.metadata.papermill["status"] for c in cells]
    assert status == ["completed", "completed", "failed", "pending"]
    assert cells[3].outputs == []
    assert not any("softcopy" in str(o) for c in cells for o in c.outputs)  # no markers kept


def test_a_kernel_that_dies_fails_its_notebook_and_the_next_gets_a_fresh_one(
    warm_kernel, tmp_path
) -> None:
    from papermill.exceptions import PapermillExecutionError

    run_warm(warm_kernel, tmp_path, "1 + 1", name="before")
    starts, pid = warm_kernel.starts, warm_kernel.pid
    with pytest.raises(PapermillExecutionError) as failed:
        run_warm(warm_kernel, tmp_path, "x = 1", "import os, signal\nos.kill(os.getpid(), 9)")
    assert (failed.value.cell_index, failed.value.ename) == (1, "DeadKernelError")
    kept = nbformat.read(tmp_path / "out.ipynb", as_version=4)  # written with papermill's marks
    assert sum(ERROR_TAG in c.metadata.get("tags", []) for c in kept.cells) == 2
    assert not Path(f"/proc/{pid}").exists()  # killed, and reaped
    run_warm(warm_kernel, tmp_path, "1 + 1", name="after")
    assert warm_kernel.starts == starts + 1 and warm_kernel.pid != pid


def test_plain_papermill_reports_a_dead_kernel_like_a_failed_cell(tmp_path: Path) -> None:
    import papermill
    from nbclient.exceptions import DeadKernelError

    from softcopy.ingestion.notebook_executors import _dead_kernel_error

    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    dies = "import os\nos.kill(os.getpid(), 9)"
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(dies)]
    nbformat.write(nb, tmp_path / "in.ipynb")
    with pytest.raises(DeadKernelError):
        papermill.execute_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb", log_output=False)
    error = _dead_kernel_error(tmp_path / "out.ipynb")
    assert (error.cell_index, error.ename) == (1, "DeadKernelError")
    kept = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert sum(ERROR_TAG in c.metadata.get("tags", []) for c in kept.cells) == 2


def test_papermills_own_cli_runs_the_warm_engine(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    if "softcopy" not in {e.name for e in entry_points(group="papermill.engine")}:
        pytest.skip("the papermill.engine entry point is not installed (pip install -e .)")
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata.tags = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(x * 2)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    args = ["in.ipynb", "out.ipynb", "-p", "x", "21", "--engine", "softcopy", "--no-progress-bar"]
    done = subprocess.run(
        [sys.executable, "-m", "papermill", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "42\n"
