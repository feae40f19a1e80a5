"""Artifacts on a real S3-compatible store (tests/s3_server.py: SeaweedFS, on loopback):
the same index and the same bytes as local artifacts, verify and reconcile against the
bucket, a write that publishes only verified bytes, and a bucket missing or unreachable
refused in one line before anything is written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from sqlmodel import Session, select

from softcopy.config import load_settings
from softcopy.db import dispose_engines
from softcopy.demo import build_demo
from softcopy.ingestion import service
from softcopy.ingestion.models import IngestionJob, IngestionPlan
from softcopy.ingestion.states import FindingKind, JobStatus, PlanMode
from softcopy.memory import artifacts as artifacts_
from softcopy.memory import index
from softcopy.memory.artifacts import ArtifactStoreFault, export_key, vectors_key
from softcopy.memory.stages import Stage
from tests.conftest import DEMO_TODAY

START, END = date(2026, 3, 27), date(2026, 3, 29)
BACKFILL = service.PlanOptions(
    mode=PlanMode.backfill_range, range_start_day=START, range_end_day=END
)


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the test's homes go; each has its own SQLite database (SOFTCOPY_DATABASE_URL
    unset), steps one at a time."""
    monkeypatch.delenv("SOFTCOPY_DATABASE_URL", raising=False)
    monkeypatch.delenv("SOFTCOPY_HOME", raising=False)
    monkeypatch.delenv("SOFTCOPY_ARTIFACTS_URL", raising=False)
    monkeypatch.setenv("SOFTCOPY_PARALLEL", "1")
    yield tmp_path
    index.close_all()
    dispose_engines()


@pytest.fixture
def bucket(s3_server: Any) -> str:
    name = f"softcopy-{uuid.uuid4().hex[:10]}"
    s3_server.make_bucket(name)
    return name


def demo(home: Path, artifacts_url: str | None = None, options: dict[str, Any] | None = None):
    """The demo archive in `home`, its artifacts at `artifacts_url`; its service context."""
    build_demo(home, days=30, today=DEMO_TODAY)
    if artifacts_url:
        config = home / "softcopy.toml"
        doc = tomlkit.parse(config.read_text())
        doc["artifacts_url"] = artifacts_url
        doc["artifacts_options"] = options or {}
        config.write_text(tomlkit.dumps(doc))
    ctx = service.open_context(home)
    ctx.clock = lambda: datetime(2026, 3, 31, 12, tzinfo=UTC)
    return ctx


def test_a_backfill_on_s3_leaves_the_same_index_and_artifacts_as_local_ones(
    homes: Path, s3_server: Any, bucket: str
) -> None:
    local = demo(homes / "local")
    remote = demo(homes / "remote", f"s3://{bucket}/team/archive", s3_server.options)
    assert remote.settings.artifacts_shared and not local.settings.artifacts_shared
    for ctx in (local, remote):
        outcome = service.run(ctx, options=BACKFILL)
        assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded

    published = index.day_digests(local.settings.index_path)
    assert published and index.day_digests(remote.settings.index_path) == published
    assert not (homes / "remote" / "export").exists()  # nothing landed on the local disk
    assert not (homes / "remote" / "vectors").exists()
    files = {
        p.relative_to(homes / "local").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("export", "vectors")
        for p in (homes / "local" / folder).rglob("*")
        if p.is_file()
    }
    fs = s3_server.fs()
    root = f"{bucket}/team/archive/"
    objects = {
        key.removeprefix(root): hashlib.sha256(fs.cat_file(key)).hexdigest()
        for key in fs.find(root)
    }
    assert {k.split("/")[1] for k in files} == {"chat", "mail", "notes"}
    assert objects == files  # the same keys with the same bytes, and no temporary key left
    assert service.verify(remote, job_id=remote_job(remote)).ok


def remote_job(ctx: service.Context) -> int:
    with Session(ctx.engine) as session:
        job = session.exec(select(IngestionJob).order_by(IngestionJob.id.desc())).first()  # type: ignore[union-attr]
        assert job is not None and job.id is not None
        return job.id


def test_verify_finds_and_reconcile_repairs_deleted_and_corrupted_objects(
    homes: Path, s3_server: Any, bucket: str
) -> None:
    ctx = demo(homes / "home", f"s3://{bucket}/a", s3_server.options)
    outcome = service.run(ctx, options=BACKFILL)
    assert outcome.job is not None and outcome.job.job.id is not None
    job_id = outcome.job.job.id
    fs = s3_server.fs()
    keys = fs.find(f"{bucket}/a")
    gone = next(k for k in keys if "/export/chat/" in k)
    garbled = [k for k in keys if "/vectors/mail/" in k][-1]
    gone_day, garbled_day = (date.fromisoformat(k.rsplit("/", 1)[1][:10]) for k in (gone, garbled))
    before = {key: fs.cat_file(key) for key in (gone, garbled)}
    fs.rm_file(gone)
    fs.pipe_file(garbled, b"not the vectors that were written")

    found = service.verify(ctx, job_id=job_id)
    assert not found.ok
    problems = {(p["source"], p["day"], p["stage"]): p["problem"] for p in found.problems}
    assert problems == {
        ("chat", gone_day.isoformat(), "export"): f"artifact missing: s3://{gone}",
        ("mail", garbled_day.isoformat(), "embed"): (
            f"artifact changed since the checkpoint: s3://{garbled}"
        ),
    }

    report = service.reconcile(ctx, repair=True)
    assert {(f.kind, f.source, f.day) for f in report.findings} == {
        (FindingKind.missing_artifact, "chat", gone_day),
        (FindingKind.corrupted_artifact, "mail", garbled_day),
    }
    assert report.repair_plan is not None
    repaired = service.run(ctx, plan_id=report.repair_plan.id)
    assert repaired.job is not None and repaired.job.job.status is JobStatus.succeeded
    assert service.verify(ctx, job_id=repaired.job.job.id).ok  # type: ignore[arg-type]
    assert service.reconcile(ctx).run.findings_count == 0
    assert {key: fs.cat_file(key) for key in before} == before  # the same bytes again


def test_reconcile_removes_temporary_objects_that_dead_writes_left_in_the_bucket(
    homes: Path, s3_server: Any, bucket: str
) -> None:
    ctx = demo(homes / "home", f"s3://{bucket}/a", s3_server.options)
    assert service.run(ctx, options=BACKFILL).job is not None
    fs = s3_server.fs()
    final = f"{bucket}/a/{export_key('chat', START)}"
    folder, name = final.rsplit("/", 1)
    dead = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"  # as Artifacts.write names its PUT
    fs.pipe_file(dead, b"half a shard")
    keys = set(fs.find(f"{bucket}/a")) - {dead}
    written = datetime.now(UTC)

    ctx.clock = lambda: written + timedelta(minutes=10)  # a write may still be going on
    assert service.reconcile(ctx).run.findings_count == 0
    assert fs.exists(dead)

    ctx.clock = lambda: written + timedelta(hours=2)
    report = service.reconcile(ctx)
    assert [(f.kind, f.source) for f in report.findings] == [
        (FindingKind.leftover_temporary, "chat")
    ]
    assert "removed 1 temporary artifact " in report.findings[0].detail
    assert not fs.exists(dead)
    assert set(fs.find(f"{bucket}/a")) == keys  # every final object kept


def test_an_object_write_publishes_only_bytes_it_verified(
    homes: Path, s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = demo(homes / "home", f"s3://{bucket}/w", s3_server.options).settings
    store = artifacts_.artifacts(settings)
    key = export_key("chat", START)
    assert store.write(key, b"first\n") == hashlib.sha256(b"first\n").hexdigest()
    assert store.read(key) == b"first\n"
    assert store.sha256(key) == hashlib.sha256(b"first\n").hexdigest()
    assert artifacts_.present_days(settings, Stage.export, "chat", [START, END]) == {START}

    real_pipe = store.fs.pipe_file

    def torn(path: str, data: bytes, **kwargs: Any) -> None:  # the store keeps a part
        real_pipe(path, data[:-3], **kwargs)

    monkeypatch.setattr(store.fs, "pipe_file", torn)
    with pytest.raises(ArtifactStoreFault, match="holds 7 bytes after writing 10"):
        store.write(key, b"replaced\n\n")
    monkeypatch.undo()
    assert store.read(key) == b"first\n"  # the final key was never touched
    fs = s3_server.fs()
    assert fs.find(f"{bucket}/w") == [f"{bucket}/w/{key}"]  # and no temporary key is left
    assert store.sha256(vectors_key("chat", START)) is None


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTCOPY_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "softcopy", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env | {"SOFTCOPY_PARALLEL": "1"},
        timeout=120,
        check=False,
    )


def test_a_missing_bucket_is_one_line_and_nothing_is_written(homes: Path, s3_server: Any) -> None:
    home = homes / "home"
    demo(home, "s3://no-such-bucket-here/x", s3_server.options)
    args = (
        "--mode",
        "backfill_range",
        "--range-start-day",
        str(START),
        "--range-end-day",
        str(END),
    )
    done = run_cli(home, "ingestion", "run", *args)
    assert done.returncode == 3, done.stderr  # the machine's fault, not the request's
    assert done.stderr == (
        "error: artifacts at s3://no-such-bucket-here/x: "
        "bucket 'no-such-bucket-here' does not exist\n"
    )
    nothing_written(home)


def test_an_unreachable_store_is_refused_before_anything_is_written(
    homes: Path, s3_server: Any
) -> None:
    closed = s3_server.options | {"endpoint_url": f"http://127.0.0.1:{_closed_port()}"}
    ctx = demo(homes / "home", "s3://softcopy/x", closed)
    for attempt in (
        lambda: service.run(ctx, options=BACKFILL),
        lambda: service.work(ctx, once=True),
    ):
        with pytest.raises(ArtifactStoreFault) as refused:
            attempt()
        assert str(refused.value).startswith("artifacts at s3://softcopy/x: cannot be reached: ")
        assert "\n" not in str(refused.value)
    nothing_written(homes / "home")


def nothing_written(home: Path) -> None:
    with Session(service.open_context(home).engine) as session:
        assert session.exec(select(IngestionPlan)).all() == []
        assert session.exec(select(IngestionJob)).all() == []
    assert not (home / "export").exists() and not load_settings(home).index_path.exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_credentials_and_endpoint_from_the_standard_aws_variables(
    homes: Path, s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing but the URL in softcopy.toml: s3fs takes the rest from the environment, as
    its users expect (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("SOFTCOPY_ARTIFACTS_URL", f"s3://{bucket}/env")
    (homes / "home").mkdir()
    settings = load_settings(homes / "home")
    assert settings.artifacts_options == {} and settings.artifacts_shared
    artifacts_.check(settings)
    artifacts_.artifacts(settings).write(export_key("notes", START), b"{}\n")
    assert s3_server.fs().cat_file(f"{bucket}/env/{export_key('notes', START)}") == b"{}\n"
