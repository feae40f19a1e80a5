"""Where the stages' artifacts live, and the one place that writes, reads and checks them.

A day's artifacts are the keys `export/<source>/<YYYY>/<day>.jsonl` and
`vectors/<source>/<YYYY>/<day>.npy` under one root, `settings.artifacts_url`: the home
folder by default, or any fsspec URL (`s3://bucket/prefix` with s3fs, for an S3-compatible
store), so that steps on any machine write and read the same artifacts. This module is the
only one that talks to fsspec; stages, verify and reconcile name keys, never paths.

A write is atomic on both kinds of root, whatever process dies:
- a local folder: a temporary file in the key's folder, renamed over the key (`os.replace`);
- an object store: a PUT under a temporary key beside the final one, a check that the
  stored object is the bytes meant (its size, and its ETag against their MD5, or its bytes
  read back against their sha256 when the store's ETag is no MD5), a server-side copy to
  the final key (an object appears whole or not at all), checked again, and the temporary
  key deleted. A reader sees the old object or the new one, never a part; a temporary key
  left by a process that died is never read (verify and reconcile look at final keys).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from softcopy.errors import StageFailed, StorageFault
from softcopy.memory import ledger
from softcopy.memory.stages import Stage
from softcopy.memory.tables import LedgerEntry

if TYPE_CHECKING:
    import numpy as np
    from fsspec import AbstractFileSystem

    from softcopy.config import Settings

BLOCK = 1 << 20  # bytes hashed at a time
_MD5 = re.compile(r"^[0-9a-f]{32}$")
# the temporary name of a write in progress, in the key's folder: `.<name>.<random>.tmp`
# (mkstemp's on a local root, a uuid on an object store); never a final key's name
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")
# object stores: one connection attempt, and a short wait, before "unreachable"
_CHECK_CLIENT = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 1}}


class ArtifactStoreFault(StorageFault):
    """The artifact store cannot be used: its bucket is missing, it cannot be reached, it
    refuses the credentials, or a read or write failed on it. One line, no traceback."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason, what=f"artifacts at {url}")


def export_key(source: str, day: date) -> str:
    return f"export/{source}/{day:%Y}/{day.isoformat()}.jsonl"


def vectors_key(source: str, day: date) -> str:
    return f"vectors/{source}/{day:%Y}/{day.isoformat()}.npy"


def stage_key(stage: Stage, source: str, day: date) -> str:
    """The key of a stage's artifact for that day (export and embed have one)."""
    return (export_key if Stage(stage) is Stage.export else vectors_key)(source, day)


def stage_folder(stage: Stage, source: str) -> str:
    """The folder (key prefix) of all a source's artifacts of a stage, every year."""
    return f"{'export' if Stage(stage) is Stage.export else 'vectors'}/{source}"


@dataclass(frozen=True)
class Artifacts:
    """The artifact root of a configuration: a local folder or an fsspec file system."""

    url: str  # as configured, for messages (never holds a secret: options hold those)
    fs: AbstractFileSystem
    root: str  # the root in the file system's own terms
    local: bool

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def location(self, key: str) -> str:
        """Where the key lives, as a person (or `fsspec.open`) would name it."""
        return self.path(key) if self.local else self.fs.unstrip_protocol(self.path(key))

    def write(self, key: str, data: bytes) -> str:
        """Write `data` at `key` atomically; returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if self.local:
            _write_local(Path(self.path(key)), data)
        else:
            self._guarded(key, lambda: self._write_object(self.path(key), data, sha))
        return sha

    def read(self, key: str) -> bytes:
        """The bytes at `key`; FileNotFoundError when there are none."""
        if self.local:
            return Path(self.path(key)).read_bytes()
        return self._guarded(key, lambda: self.fs.cat_file(self.path(key)))

    def sha256(self, key: str) -> str | None:
        """The sha256 of the bytes at `key`, or None when there are none."""
        h = hashlib.sha256()
        try:
            if self.local:
                with open(self.path(key), "rb") as handle:
                    for block in iter(lambda: handle.read(BLOCK), b""):
                        h.update(block)
            else:
                self._guarded(key, lambda: h.update(self.fs.cat_file(self.path(key))))
        except FileNotFoundError:
            return None
        return h.hexdigest()

    def leftovers(self, folder: str, before: datetime) -> dict[str, datetime]:
        """The temporary keys under `folder` (recursively) that writes which died left behind,
        last changed before `before`, with that time: a write in progress is younger. The
        final key each was meant for is its name without the dot and the suffix."""
        found: dict[str, datetime] = {}
        base = self.path(folder)
        if self.local:
            for parent, _, files in os.walk(base):
                for name in files:
                    if _TEMPORARY.match(name):
                        path = os.path.join(parent, name)
                        with contextlib.suppress(FileNotFoundError):
                            when = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
                            found[path] = when
        else:
            try:
                listed = self._guarded(folder, lambda: self.fs.find(base, detail=True))
            except FileNotFoundError:
                listed = {}
            for path, info in listed.items():
                when = _modified(info)
                if _TEMPORARY.match(path.rsplit("/", 1)[-1]) and when is not None:
                    found[path] = when
        prefix = f"{self.root}/"
        return {path.removeprefix(prefix): when for path, when in found.items() if when < before}

    def delete(self, key: str) -> None:
        """Remove the object at `key` (gone already is fine)."""
        if self.local:
            Path(self.path(key)).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self._guarded(key, lambda: self.fs.rm_file(self.path(key)))

    def names(self, folder: str) -> set[str]:
        """The names in the folder (key prefix) `folder`; none when it does not exist."""
        try:
            if self.local:
                return set(os.listdir(self.path(folder)))
            listed = self._guarded(folder, lambda: self.fs.ls(self.path(folder), detail=False))
        except (FileNotFoundError, NotADirectoryError):
            return set()
        return {str(name).rstrip("/").rsplit("/", 1)[-1] for name in listed}

    def check(self) -> None:
        """Refuse, in one line, a root that cannot take writes: a missing bucket, a store
        that cannot be reached or refuses the credentials. Local roots are the home's
        folders, checked with the home; nothing is written here."""
        if self.local:
            return
        bucket = self.root.split("/", 1)[0]
        try:
            probe = _checking_fs(self.fs)
            probe.info(bucket)
        except FileNotFoundError:
            raise ArtifactStoreFault(self.url, f"bucket {bucket!r} does not exist") from None
        except PermissionError as exc:
            raise ArtifactStoreFault(
                self.url,
                f"access to bucket {bucket!r} refused ({_reason(exc)}); check "
                "the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or artifacts_options)",
            ) from None
        except Exception as exc:
            raise ArtifactStoreFault(self.url, f"cannot be reached: {_reason(exc)}") from None

    def _write_object(self, path: str, data: bytes, sha: str) -> None:
        folder, name = path.rsplit("/", 1)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            self.fs.pipe_file(tmp, data)
            self._check_stored(tmp, len(data), md5, sha)
            self.fs.copy(tmp, path)
            self._check_stored(path, len(data), md5, sha)
        finally:
            with contextlib.suppress(Exception):  # a leftover temporary key is never read
                self.fs.rm_file(tmp)

    def _check_stored(self, path: str, size: int, md5: str, sha: str) -> None:
        """The object at `path` holds the bytes meant, or raise."""
        info = self.fs.info(path)
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"').lower()
        if info.get("size") != size:
            raise OSError(f"{path} holds {info.get('size')} bytes after writing {size}")
        if _MD5.match(etag):
            if etag != md5:
                raise OSError(f"{path} does not hold the bytes written (its MD5 differs)")
        elif hashlib.sha256(self.fs.cat_file(path)).hexdigest() != sha:
            raise OSError(f"{path} does not hold the bytes written (its sha256 differs)")

    def _guarded(self, key: str, operation: Any) -> Any:
        """Run an object-store operation; its failures (but a missing key) become one
        ArtifactStoreFault line."""
        try:
            return operation()
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ArtifactStoreFault(self.location(key), _reason(exc)) from exc


def present_days(settings: Settings, stage: Stage, source: str, days: list[date]) -> set[date]:
    """Which of `days` have `stage`'s artifact for `source` in place: one listing per year
    folder (one LIST request per year on an object store), not a look per day."""
    store = artifacts(settings)
    by_year: dict[int, list[date]] = {}
    for day in days:
        by_year.setdefault(day.year, []).append(day)
    found: set[date] = set()
    for wanted in by_year.values():
        folder = stage_key(stage, source, wanted[0]).rsplit("/", 1)[0]
        names = store.names(folder)
        found.update(d for d in wanted if stage_key(stage, source, d).rsplit("/", 1)[1] in names)
    return found


def artifacts(settings: Settings) -> Artifacts:
    """The artifact root `settings` name (one per process and configuration)."""
    options = json.dumps(settings.artifacts_options, sort_keys=True, default=str)
    return _open(settings.artifacts_root, options)


def check(settings: Settings) -> None:
    """Refuse a configuration whose artifacts cannot be written, before anything is."""
    artifacts(settings).check()


@lru_cache(maxsize=16)
def _open(url: str, options_json: str) -> Artifacts:
    from fsspec.core import url_to_fs  # imported here: the local default never needs it

    options: dict[str, Any] = json.loads(options_json)
    if "://" not in url and "::" not in url:
        return Artifacts(url=url, fs=_local_fs(), root=url.rstrip("/") or "/", local=True)
    try:
        fs, root = url_to_fs(url, **({"use_listings_cache": False} | options))
    except ImportError as exc:  # e.g. "Install s3fs to access S3"
        raise ArtifactStoreFault(url, f"{exc}; pip install 'softcopy[s3]'") from None
    except (ValueError, TypeError) as exc:  # an unknown protocol, a bad option
        raise ArtifactStoreFault(url, _reason(exc)) from None
    local = "file" in _protocols(fs)
    return Artifacts(url=url, fs=fs, root=root.rstrip("/"), local=local)


def _local_fs() -> AbstractFileSystem:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _checking_fs(fs: AbstractFileSystem) -> AbstractFileSystem:
    """The same store, for a quick check: an S3 client that tries once and waits little,
    so an unreachable endpoint is told in seconds, not after minutes of retries."""
    if "s3" not in _protocols(fs):
        return fs
    kwargs = dict(fs.storage_options)
    config = dict(kwargs.get("config_kwargs") or {})
    kwargs["config_kwargs"] = {**_CHECK_CLIENT, **config}
    kwargs["skip_instance_cache"] = True
    probe = type(fs)(**kwargs)
    probe.retries = 1  # s3fs's own retries, beside botocore's
    return probe


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# where fsspec file systems put an object's last change in `info`: s3fs, the local one,
# adlfs (Azure), gcsfs (an ISO string)
_MODIFIED = ("LastModified", "mtime", "last_modified", "updated")


def _modified(info: dict[str, Any]) -> datetime | None:
    """When an object listed by fsspec last changed (aware), or None when it does not say."""
    for field in _MODIFIED:
        value = info.get(field)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def meant_for(key: str) -> str:
    """The final key a temporary key (`Artifacts.leftovers`) was written for."""
    folder, _, name = key.rpartition("/")
    match = _TEMPORARY.match(name)
    return f"{folder}/{match['name']}" if match else key


def _write_local(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename. (No fsync: after an OS crash a
    day may need redoing, which verify and reconcile catch.)"""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a full disk or a read-only home: one line, not a traceback
        fault = StorageFault.from_os_error(exc, path)
        if fault is None:
            raise
        raise fault from exc


def require_done(
    session: Session, *, source: str, day: date, stage: Stage, wanted_by: Stage
) -> LedgerEntry:
    """The ledger entry of an upstream stage, which must describe a good run."""
    entry = ledger.get(session, source=source, day=day, stage=stage)
    if entry is None or entry.output_digest is None:
        raise StageFailed(wanted_by, source, day, f"no {stage} yet; run {stage} first")
    return entry


def read_checked(settings: Settings, entry: LedgerEntry, wanted_by: Stage) -> bytes:
    """The bytes of the artifact `entry` recorded, refusing a missing one or one changed
    since it was written."""
    store = artifacts(settings)
    key = stage_key(entry.stage, entry.source, entry.day)
    try:
        data = store.read(key)
    except FileNotFoundError:
        raise StageFailed(
            wanted_by,
            entry.source,
            entry.day,
            f"{entry.stage} artifact missing: {store.location(key)}",
        ) from None
    if hashlib.sha256(data).hexdigest() != entry.artifact_sha:
        raise StageFailed(
            wanted_by,
            entry.source,
            entry.day,
            f"{entry.stage} artifact changed since it was written: {store.location(key)}; "
            f"redo {entry.stage}",
        )
    return data


def vectors_to_bytes(matrix: np.ndarray) -> bytes:
    import numpy as np  # here: reading coverage (the dashboard's first paint) needs none

    buffer = io.BytesIO()
    np.save(buffer, matrix.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def vectors_from_bytes(data: bytes) -> np.ndarray:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)
