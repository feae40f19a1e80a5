"""Artifacts through memory.artifacts: the local default as before (the home folder,
atomic rename), the artifacts_url settings, and the object-store write path on fsspec's
in-memory file system (whose listing has no MD5 ETag: the bytes are read back)."""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from softcopy.config import load_settings
from softcopy.errors import ConfigError, StorageFault
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode
from softcopy.memory import artifacts as artifacts_
from softcopy.memory.artifacts import ArtifactStoreFault, export_key, vectors_key
from softcopy.memory.stages import Stage

DAY = date(2026, 3, 28)


def test_the_default_is_the_home_folder_written_atomically(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    assert settings.artifacts_root == str(tmp_path.resolve()) and not settings.artifacts_shared
    store = artifacts_.artifacts(settings)
    assert store.local
    key = export_key("chat", DAY)
    assert key == "export/chat/2026/2026-03-28.jsonl"
    sha = store.write(key, b"one\n")
    path = tmp_path / "export" / "chat" / "2026" / "2026-03-28.jsonl"
    assert path.read_bytes() == b"one\n" and store.location(key) == str(path.resolve())
    assert sha == hashlib.sha256(b"one\n").hexdigest() == store.sha256(key)
    assert store.read(key) == b"one\n" and os.listdir(path.parent) == [path.name]
    assert store.sha256(vectors_key("chat", DAY)) is None
    assert artifacts_.present_days(settings, Stage.export, "chat", [DAY, date(2025, 1, 1)]) == {DAY}


def test_a_failed_local_write_keeps_the_old_bytes_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = artifacts_.artifacts(load_settings(tmp_path, env={}))
    key = vectors_key("mail", DAY)
    store.write(key, b"old")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StorageFault, match="disk is full"):
        store.write(key, b"new")
    monkeypatch.undo()
    assert store.read(key) == b"old"
    assert os.listdir(tmp_path / "vectors" / "mail" / "2026") == ["2026-03-28.npy"]


def test_artifacts_url_from_the_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "softcopy.toml").write_text(
        'artifacts_url = "shared/artifacts"\n'
        'artifacts_options = { endpoint_url = "http://127.0.0.1:8333" }\n'
    )
    from_file = load_settings(tmp_path, env={})
    assert from_file.artifacts_root == str(tmp_path.resolve() / "shared" / "artifacts")
    assert from_file.artifacts_options == {"endpoint_url": "http://127.0.0.1:8333"}
    assert not from_file.artifacts_shared
    for url, shared in (
        ("s3://bucket/prefix/", True),
        ("simplecache::s3://bucket/prefix", True),
        ("gcs://bucket", True),
        ("memory://scratch", False),
        ("file:///srv/artifacts", False),
    ):
        settings = load_settings(tmp_path, env={"SOFTCOPY_ARTIFACTS_URL": url})  # env wins
        assert settings.artifacts_shared is shared, url
    assert load_settings(tmp_path, env={"SOFTCOPY_ARTIFACTS_URL": "s3://b/p/"}).artifacts_root == (
        "s3://b/p"
    )
    assert (
        load_settings(tmp_path, env={"SOFTCOPY_ARTIFACTS_URL": "file:///srv/x"}).artifacts_root
        == "/srv/x"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("artifacts_url = 42", "artifacts_url = 42: must be a folder or a URL"),
        ('artifacts_url = "s3://"', "names no bucket"),
        ('artifacts_options = "x"', "artifacts_options = 'x': must be a table"),
    ],
)
def test_a_bad_artifacts_setting_is_one_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "softcopy.toml").write_text(line + "\n")
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(tmp_path, env={})
    assert "\n" not in str(refused.value)


def test_an_unknown_protocol_is_refused_in_one_line(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"SOFTCOPY_ARTIFACTS_URL": "nosuch://bucket/p"})
    with pytest.raises(ArtifactStoreFault, match="artifacts at nosuch://bucket/p: ") as refused:
        artifacts_.check(settings)
    assert "\n" not in str(refused.value)


def test_an_object_store_write_reads_back_what_it_cannot_check_by_etag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory:// stands in for a store whose ETags are no MD5: the temporary object's bytes
    are read back and hashed; a mismatch publishes nothing."""
    settings = replace(
        load_settings(tmp_path, env={}), artifacts_url=f"memory://softcopy-{tmp_path.name}"
    )
    store = artifacts_.artifacts(settings)
    assert not store.local
    key = export_key("notes", DAY)
    store.write(key, b"kept\n")
    assert store.read(key) == b"kept\n"
    assert store.location(key).startswith("memory://")
    assert store.location(key).endswith(f"/softcopy-{tmp_path.name}/{key}")

    real_pipe = store.fs.pipe_file

    def flipped(path: str, data: bytes, **kwargs: object) -> None:  # same size, other bytes
        real_pipe(path, data.upper(), **kwargs)

    monkeypatch.setattr(store.fs, "pipe_file", flipped)
    with pytest.raises(ArtifactStoreFault, match="sha256 differs"):
        store.write(key, b"other\n")
    monkeypatch.undo()
    assert store.read(key) == b"kept\n"
    assert store.names(key.rsplit("/", 1)[0]) == {"2026-03-28.jsonl"}  # no temporary key


def test_a_backfill_into_another_local_folder(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "artifacts"
    monkeypatch.setenv("SOFTCOPY_ARTIFACTS_URL", str(elsewhere))
    ctx = service.open_context(demo_home)
    options = service.PlanOptions(
        mode=PlanMode.backfill_range, range_start_day=DAY, range_end_day=DAY
    )
    outcome = service.run(ctx, options=options)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert not (demo_home / "export").exists()
    assert sorted(p.name for p in (elsewhere / "export").iterdir()) == ["mail", "notes"]
    assert service.verify(ctx, job_id=outcome.job.job.id).ok  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {"LastModified": datetime(2026, 5, 1, 9, tzinfo=UTC)},
            datetime(2026, 5, 1, 9, tzinfo=UTC),
        ),
        ({"mtime": 1_777_626_000.0}, datetime.fromtimestamp(1_777_626_000.0, UTC)),
        ({"last_modified": datetime(2026, 5, 1, 9)}, datetime(2026, 5, 1, 9, tzinfo=UTC)),
        (
            {"updated": "2026-05-01T09:00:00.123Z"},
            datetime(2026, 5, 1, 9, 0, 0, 123000, tzinfo=UTC),
        ),
        ({"updated": "yesterday"}, None),
        ({"size": 3}, None),
    ],
)
def test_when_an_object_last_changed_is_read_from_each_stores_listing(
    info: dict[str, object], expected: datetime | None
) -> None:
    """S3 (LastModified), local (mtime), Azure (last_modified) and GCS (updated, a string):
    reconcile finds a dead write's temporary object on any of them."""
    assert artifacts_._modified(info) == expected
