"""`softcopy ingestion run --executor dask` against a Dask cluster started from the command
line: `dask scheduler` and two `dask worker` processes, each in a working directory of its
own and in a mount namespace where the coordinator's home does not exist — as if on
another machine. State and the team index are in PostgreSQL, artifacts in a real S3 store.

With artifacts in the home the run is refused in one line before anything is written (the
workers would write to their own disks); with `artifacts_url = "s3://…"` and a PostgreSQL
index it runs end to end: every step on the workers (publish too), verify passes and the
CLI finds what a worker published."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from sqlmodel import Session, func, select

from softcopy.config import add_source, load_settings
from softcopy.db import get_engine
from softcopy.demo import build_demo
from softcopy.ingestion.models import IngestionJob, JobStep
from tests.conftest import DEMO_TODAY, PG_URL

pytest.importorskip("distributed", reason="the [dask] extra is not installed")
pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SOFTCOPY_TEST_DATABASE_URL"),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("unshare") is None,
        reason="hides the coordinator's home from the Dask workers in a mount namespace: "
        "needs root and unshare",
    ),
]
DASK = str(Path(sys.executable).with_name("dask"))
# run a command with a folder hidden under an empty tmpfs: "another machine" for it
ELSEWHERE = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
FIRST, LAST = DEMO_TODAY - timedelta(days=3), DEMO_TODAY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A scheduler and two workers started as a user would; each worker in a mount
    namespace where the test's temporary folders (the coordinator's home) are an empty
    tmpfs: it reads the sources and the bucket, and nothing of the home."""
    hidden = str(tmp_path_factory.getbasetemp())
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    places = [Path(tempfile.mkdtemp(prefix=f"dask-{name}-")) for name in ("s", "w1", "w2")]
    bare = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}  # nothing of the coordinator's
    logs = [(place / "log").open("w") for place in places]
    scheduler = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", f"127.0.0.1:{dashboard}"]
    processes = [
        subprocess.Popen(
            scheduler,
            cwd=places[0],
            env=bare | {"HOME": str(places[0])},
            stdout=subprocess.DEVNULL,
            stderr=logs[0],
            start_new_session=True,
        )
    ]
    for name, place, log in zip(("w1", "w2"), places[1:], logs[1:], strict=True):
        worker = ["unshare", "--mount", "--propagation", "private", "sh", "-c", ELSEWHERE]
        worker += ["sh", hidden, DASK, "worker", address, "--name", name, "--nthreads", "1"]
        worker += ["--local-directory", str(place), "--no-dashboard"]
        processes.append(
            subprocess.Popen(
                worker,
                cwd=place,
                env=bare | {"HOME": str(place)},
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its group: unshare, sh and the worker they start
            )
        )
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dashboard}/status"}
    finally:
        from softcopy.ingestion import dask_executor

        dask_executor.close_clients()
        # each process group: SIGTERM to the process alone would stop `unshare` (or its
        # `sh`) and leave the dask worker it started running after the test
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()
        for place in places:
            shutil.rmtree(place, ignore_errors=True)


def softcopy(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "softcopy", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | env,
        check=False,
    )


@pytest.mark.timeout(900)  # a loaded machine: the workers' first imports are slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_cli_job_on_command_line_workers_of_another_machine(
    cluster: dict[str, str], home: Path, database_url: str, s3_server: Any
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="sources-"))  # the sources: on a shared path
    try:
        os.chmod(shared, 0o755)
        build_demo(shared, days=4, today=DEMO_TODAY)
        for name, kind, path in (
            ("notes", "notes", "sources/notes"),
            ("chat", "jsonl", "sources/chat.jsonl"),
            ("mail", "mbox", "sources/mail.mbox"),
        ):
            add_source(home, name=name, kind=kind, path=str(shared / path))
        env = {"SOFTCOPY_DASK_SCHEDULER": cluster["address"], "SOFTCOPY_TIMEZONE": "UTC"}
        run = (
            "ingestion", "run", "--executor", "dask", "--mode", "backfill_range",
            "--range-start-day", FIRST.isoformat(), "--range-end-day", LAST.isoformat(),
        )  # fmt: skip

        # artifacts in the home: the workers would write them to their own disks
        refused = softcopy(home, *run, env=env)
        assert refused.returncode == 2, refused.stderr
        line = refused.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert f"artifacts are local to {home}" in line and "on Dask worker" in line, line
        assert "set artifacts_url = 's3://bucket/prefix'" in line, line
        engine = get_engine(database_url)
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(IngestionJob)) == 0

        # artifacts in the bucket and the index in PostgreSQL: every step fans out
        s3_server.make_bucket("dask-e2e")
        doc = tomlkit.parse((home / "softcopy.toml").read_text())
        doc["artifacts_url"] = "s3://dask-e2e/team"
        doc["artifacts_options"] = s3_server.options
        doc["index_url"] = database_url
        (home / "softcopy.toml").write_text(tomlkit.dumps(doc))
        done = softcopy(home, *run, "--json", env=env)
        assert done.returncode == 0, done.stderr
        with Session(engine) as session:
            job = session.scalars(select(IngestionJob)).one()
            steps = list(session.scalars(select(JobStep).where(JobStep.job_id == job.id)))
        assert job.status == "succeeded", job.error
        workers = {s.worker.split()[0] for s in steps if s.worker}
        assert len(steps) > 3 and all(s.worker for s in steps)  # publish ran there too
        assert workers <= {"w1", "w2"} and len(workers) == 2, workers

        wide = env | {"COLUMNS": "250"}  # the table's worker column unwrapped
        shown = softcopy(home, "ingestion", "show", str(job.id), "--steps", env=wide)
        assert shown.returncode == 0, shown.stderr
        assert f"dask     {cluster['dashboard']}" in shown.stdout
        assert "w1 (tcp://127.0.0.1:" in shown.stdout and "w2 (tcp://127.0.0.1:" in shown.stdout
        verified = softcopy(home, "ingestion", "verify", str(job.id), env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        settings = load_settings(home, env={"SOFTCOPY_DATABASE_URL": database_url})
        assert settings.index_shared and settings.artifacts_shared
        found = softcopy(home, "memory", "search", "standup", "--json", env=env)
        assert found.returncode == 0, found.stderr
        assert '"source"' in found.stdout  # what the workers published, found from here
    finally:
        shutil.rmtree(shared, ignore_errors=True)
