"""Faults of the machine, with real mechanisms, through the real CLI in subprocesses: a full
disk (a small tmpfs), a read-only home (a read-only bind mount), a database that goes away
mid-job (the PostgreSQL cluster stopped, or the SQLite file locked past its busy timeout)
and a worker SIGKILLed with its lease left to go stale. After each: one clear line, nothing
lost, and once the fault is gone the job resumes and `verify` passes, with the index an
uninterrupted run makes.

Mounting needs root (CI runs as root); anywhere else the tests that mount skip and say so.
The SIGKILL fault and the SQLite leg of the database fault need no mount: they run anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from softcopy.config import load_settings
from softcopy.db import dispose_engines, get_engine, utcnow
from softcopy.demo import build_demo
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode
from softcopy.memory import index
from tests.conftest import DEMO_TODAY

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the fault is made with mount (tmpfs, bind mounts)"
)

DAYS = 14  # enough days for several steps per source, few enough to stay quick
START = DEMO_TODAY - timedelta(days=DAYS - 1)
BACKFILL_ARGS = (
    "--mode",
    "backfill_range",
    "--range-start-day",
    START.isoformat(),
    "--range-end-day",
    DEMO_TODAY.isoformat(),
    "--executor",
    "inline",
)
Rows = list[tuple[str, str, str, str]]


def softcopy(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, with only the SOFTCOPY_* variables given here."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOFTCOPY_")}
    return subprocess.run(
        [sys.executable, "-m", "softcopy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean | env,
        check=False,
    )


def one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single stderr line of a failed command, which names the fault."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def index_rows(home: Path) -> Rows:
    with closing(sqlite3.connect(f"{(home / 'index.db').as_uri()}?mode=ro", uri=True)) as conn:
        return sorted(conn.execute("SELECT source, day, item_id, content_hash FROM docs"))


def job_view(job_id: int, env: dict[str, str]) -> dict:
    shown = softcopy("ingestion", "show", str(job_id), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["job"]


def resume_and_verify(job_id: int, env: dict[str, str], home: Path, reference: Rows) -> None:
    resumed = softcopy("ingestion", "resume", str(job_id), "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    job = json.loads(resumed.stdout)["job"]
    assert job["status"] == "succeeded" and job["cells_done"] == job["cells_total"]
    verified = softcopy("ingestion", "verify", "--job-id", str(job_id), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert index_rows(home) == reference


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} failed: {done.stderr.strip()}")


def umount(target: Path) -> None:
    for _ in range(50):  # a process that just exited may still hold a file for a moment
        if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
            time.sleep(0.1)
            continue
        return
    subprocess.run(["umount", "--lazy", str(target)], check=False)


@contextmanager
def tmpfs(target: Path, size: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target))
    try:
        yield target
    finally:
        index.close_all()
        umount(target)


@contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mount("--bind", str(source), str(target))
    try:
        mount("-o", "remount,bind,ro", str(target))
        yield target
    finally:
        index.close_all()
        umount(target)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def context(home: Path, database_url: str) -> service.Context:
    settings = load_settings(home, env={"SOFTCOPY_DATABASE_URL": database_url})
    return service.Context(settings=settings, engine=get_engine(settings.database_url))


def backfill_in_process(home: Path, database_url: str) -> int:
    ctx = context(home, database_url)
    outcome = service.run(
        ctx,
        options=service.PlanOptions(
            mode=PlanMode.backfill_range, range_start_day=START, range_end_day=DEMO_TODAY
        ),
    )
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    index.close_all()
    dispose_engines()
    return outcome.job.job.id or 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    """The index an uninterrupted run makes of the same demo archive."""
    home = tmp_path_factory.mktemp("reference")
    build_demo(home, days=DAYS, today=DEMO_TODAY)
    backfill_in_process(home, f"sqlite:///{home / 'softcopy.db'}")
    return index_rows(home)


@needs_root
def test_a_full_disk_fails_the_job_then_it_resumes_once_there_is_room(
    tmp_path: Path, database_url: str, reference: Rows
) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        home = disk / "home"
        build_demo(home, days=DAYS, today=DEMO_TODAY)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        # leave room for about a third of the ~400 KB of artifacts and index the run writes
        (disk / "ballast").write_bytes(b"\0" * (free - 140 * 1024))
        env = {"SOFTCOPY_HOME": str(home), "SOFTCOPY_DATABASE_URL": database_url}

        ran = softcopy("ingestion", "run", *BACKFILL_ARGS, "--json", env=env)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "Traceback" not in ran.stdout + ran.stderr
        job = json.loads(ran.stdout)["job"]["job"]
        assert job["status"] == "failed", job
        error = job["error"]
        assert "\n" not in error and str(home) in error
        assert "disk is full" in error or "no space left on device" in error, error
        assert 0 < job["cells_done"] < job["cells_total"]
        shown = service.show_job(context(home, database_url), job_id=job["id"])
        assert shown.job.status is JobStatus.failed  # not left running

        mount("-o", "remount,size=64m", str(disk))  # make room
        resume_and_verify(job["id"], env, home, reference)


@needs_root
def test_a_full_disk_under_the_home_database_too_is_one_line_then_resumable(
    tmp_path: Path, reference: Rows
) -> None:
    """The default layout: the SQLite control plane in the home, on the full disk. Either the
    job's end cannot be written either, and the worker says so in one line, or the WAL still
    had room for it, and the job's summary says failed with the fault (which one depends on
    when SQLite checkpoints its WAL); once there is room the job resumes."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        home = disk / "home"
        build_demo(home, days=DAYS, today=DEMO_TODAY)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "ballast").write_bytes(b"\0" * (free - 1200 * 1024))  # the WAL fills it
        env = {"SOFTCOPY_HOME": str(home)}
        database_url = f"sqlite:///{home / 'softcopy.db'}"

        ran = softcopy("ingestion", "run", *BACKFILL_ARGS, env=env)
        assert ran.returncode != 0
        fault = f"database {home / 'softcopy.db'}: the disk is full"
        if ran.stderr.strip():  # the job's end could not be written
            one_clear_line(ran, fault)
        else:  # it could: the summary names the fault
            assert "Traceback" not in ran.stdout and fault in ran.stdout, ran.stdout
            assert "status   failed" in ran.stdout, ran.stdout

        mount("-o", "remount,size=64m", str(disk))  # make room
        ctx = context(home, database_url)
        [job] = service.list_jobs(ctx)
        assert job.status in (JobStatus.failed, JobStatus.interrupted), job
        resume_and_verify(job.id or 0, env, home, reference)
        dispose_engines()


@needs_root
def test_a_read_only_home_searches_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    build_demo(home, days=DAYS, today=DEMO_TODAY)
    backfill_in_process(home, f"sqlite:///{home / 'softcopy.db'}")
    before = snapshot(home)
    with read_only_view(home, tmp_path / "ro") as ro:
        env = {"SOFTCOPY_HOME": str(ro)}
        found = softcopy("memory", "search", "meeting", "--json", env=env)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout), "search found nothing in a backfilled home"
        listed = softcopy("ingestion", "jobs", "--json", env=env)  # a pure read works too
        assert listed.returncode == 0, listed.stderr

        coverage = softcopy("ingestion", "coverage", env=env)
        assert coverage.returncode == 3
        one_clear_line(coverage, str(ro), "read-only")
        ran = softcopy("ingestion", "run", *BACKFILL_ARGS, "--force", env=env)
        assert ran.returncode == 3
        one_clear_line(ran, str(ro), "read-only")
        assert snapshot(home) == before  # nothing changed on disk, not even a -wal or -shm

        # while a writer has the home open (its -wal and -shm exist), reads still work
        live = [sqlite3.connect(home / name) for name in ("index.db", "softcopy.db")]
        try:
            for conn in live:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            assert (home / "index.db-shm").exists()
            again = softcopy("memory", "search", "meeting", "--json", env=env)
            assert again.returncode == 0, again.stderr
            assert json.loads(again.stdout) == json.loads(found.stdout)
        finally:
            for conn in live:
                conn.close()


SLOW_CLI = textwrap.dedent(
    """
    import os, sys, time
    from softcopy.cli.main import main
    from softcopy.ingestion.executors import InlineExecutor
    from softcopy.memory.pipeline import run_stage
    from softcopy.registry import EXECUTORS

    pause = float(os.environ["SLOW_STAGE_SECONDS"])

    def slow(ctx, stage, source, day):
        time.sleep(pause)  # between two days: no transaction is open while it sleeps
        return run_stage(ctx, stage, source, day)

    EXECUTORS.register("slow", lambda: InlineExecutor(stage_runner=slow))
    sys.exit(main(sys.argv[1:]))
    """
)


def slow_cli(*args: str, env: dict[str, str], pause: float) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOFTCOPY_")}
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean | env | {"SLOW_STAGE_SECONDS": str(pause)},
    )


def checkpoints(database_url: str, job_id: int | None = None) -> int:
    from sqlalchemy import func, select
    from sqlmodel import Session

    from softcopy.ingestion.models import Checkpoint

    with Session(get_engine(database_url)) as session:
        query = select(func.count()).select_from(Checkpoint)
        if job_id is not None:
            query = query.where(Checkpoint.job_id == job_id)
        return session.execute(query).scalar_one()


def wait_for_checkpoints(database_url: str, at_least: int, worker: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while checkpoints(database_url) < at_least:
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.05)


@contextmanager
def database_gone(database_url: str) -> Iterator[None]:
    """The database stops answering: the PostgreSQL cluster stops (and always starts
    again), or another process holds the SQLite file locked past the busy timeout."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///").split("?")[0]
        holder = sqlite3.connect(path, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    clusters = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    if not clusters:
        pytest.skip("no local PostgreSQL cluster to stop (/etc/postgresql is empty)")
    control = ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main"]
    dispose_engines()  # no pooled connection of ours outlives the server
    stopped = subprocess.run([*control, "stop", "-m", "fast"], capture_output=True, text=True)
    if stopped.returncode != 0:
        pytest.skip(f"cannot stop the PostgreSQL cluster: {stopped.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([*control, "start"], check=True, capture_output=True)
        dispose_engines()


@pytest.mark.serial  # it stops the PostgreSQL server every other test shares
def test_a_database_that_goes_away_mid_job_loses_nothing(
    tmp_path: Path, database_url: str, reference: Rows
) -> None:
    if database_url.startswith("sqlite"):
        database_url += "?timeout=0.5"  # the busy timeout the lock outlasts
    home = tmp_path / "home"
    build_demo(home, days=DAYS, today=DEMO_TODAY)
    env = {"SOFTCOPY_HOME": str(home), "SOFTCOPY_DATABASE_URL": database_url}
    worker = slow_cli("ingestion", "run", *BACKFILL_ARGS[:-1], "slow", env=env, pause=0.1)
    wait_for_checkpoints(database_url, 6, worker)
    with database_gone(database_url):
        out, err = worker.communicate(timeout=90)
    assert worker.returncode != 0, out
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "database" in lines[0], lines[0]

    [job] = service.list_jobs(context(home, database_url))
    job_id = job.id or 0
    # its end was written (failed), or it could not be and the read expires its lease
    assert service.show_job(context(home, database_url), job_id=job_id).job.status in (
        JobStatus.failed,
        JobStatus.interrupted,
    )
    resumed = slow_cli("ingestion", "resume", str(job_id), "--json", env=env, pause=0)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(out)["job"]["status"] == "succeeded"
    verified = softcopy("ingestion", "verify", "--job-id", str(job_id), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert index_rows(home) == reference


def test_a_sigkilled_worker_is_interrupted_once_its_lease_is_stale(
    tmp_path: Path, database_url: str, reference: Rows
) -> None:
    home = tmp_path / "home"
    build_demo(home, days=DAYS, today=DEMO_TODAY)
    env = {"SOFTCOPY_HOME": str(home), "SOFTCOPY_DATABASE_URL": database_url}
    # steps of one day: each commits on its own, so the kill lands mid-job (with a week's
    # steps a group commit wrote most checkpoints at once, and the rest could finish
    # before the kill arrived)
    args = (*BACKFILL_ARGS, "--chunk-days", "1", "--detach", "--json")
    started = softcopy("ingestion", "run", *args, env=env)
    assert started.returncode == 0, started.stderr
    detached = json.loads(started.stdout)
    job_id, pid = detached["job"]["job"]["id"], detached["worker_pid"]
    deadline = time.monotonic() + 60
    while checkpoints(database_url, job_id) < 3:
        assert time.monotonic() < deadline, "the detached worker made no progress"
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):  # the worker is not our child: init reaps it
        assert time.monotonic() < deadline, f"worker {pid} survived SIGKILL"
        time.sleep(0.01)

    ctx = context(home, database_url)
    killed_at = checkpoints(database_url, job_id)
    ctx.clock = lambda: utcnow() + timedelta(seconds=ctx.settings.lease_timeout + 1)
    view = service.show_job(ctx, job_id=job_id)  # a read, past the lease: expiry applies
    assert killed_at < view.job.cells_total, "the worker finished before the kill"
    assert view.job.status is JobStatus.interrupted, view.job
    assert job_view(job_id, env)["status"] == "interrupted"  # persisted, for every face
    resume_and_verify(job_id, env, home, reference)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(")")[-1].split()[0] != "Z"
