"""What the three stages share: the context they run in, the result they return, where
their artifacts live, and how they write them atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import utcnow
from softcopy.errors import BadRecord, StorageFault
from softcopy.memory import scan
from softcopy.memory.embedders import Embedder, get_embedder
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import Source, open_source
from softcopy.memory.stages import Stage


@dataclass
class StageContext:
    """Everything a stage needs; one context may serve many (source, day) runs.

    Contract of a stage function: it checks everything that can fail (OperationFailed)
    before it writes to `session`, and it never commits; the caller decides the
    transaction (a day per checkpoint in jobs, a batch of days in the legacy runner).
    """

    settings: Settings
    session: Session
    done_by: str = "cli"
    skip_bad_records: bool = False
    clock: Callable[[], datetime] = utcnow
    embedder_override: Embedder | None = None  # tests and benchmarks pass their own
    # called right before a stage replaces an artifact or index rows; a job's worker uses it
    # to stop if it lost its lease (the day's ledger write is fenced again at its checkpoint)
    before_write: Callable[[], None] = lambda: None
    # the days of each source the caller will run next, in order (a job's step, the runner's
    # days): export reads up to READ_AHEAD_DAYS of them with one read of the source
    days_ahead: dict[str, list[date]] = field(default_factory=dict)
    _sources: dict[str, Source] = field(default_factory=dict, repr=False)
    # (source, day) → what export read for that day ahead of it; popped when it is used
    read_ahead: dict[tuple[str, date], list[MemoryItem | BadRecord]] = field(
        default_factory=dict, repr=False
    )

    def source(self, name: str) -> Source:
        """The opened source, its scan index refreshed once for this context."""
        if name not in self._sources:
            opened = open_source(self.settings.source(name), self.settings.timezone)
            scan.refresh(self.session, opened)
            self._sources[name] = opened
        return self._sources[name]

    @property
    def embedder(self) -> Embedder:
        return self.embedder_override or get_embedder(self.settings.embedder)


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    source: str
    day: date
    items: int
    skipped: int
    input_digest: str
    output_digest: str
    artifact: Path | None = None
    artifact_sha: str | None = None  # sha256 of the artifact's bytes, as the ledger records
    problems: tuple[str, ...] = ()  # bad records skipped (or found) on the way


def export_path(settings: Settings, source: str, day: date) -> Path:
    return settings.export_dir / source / f"{day:%Y}" / f"{day.isoformat()}.jsonl"


def vectors_path(settings: Settings, source: str, day: date) -> Path:
    return settings.vectors_dir / source / f"{day:%Y}" / f"{day.isoformat()}.npy"


def chain(*parts: str) -> str:
    """A digest over digests and names: how a stage's input digest is derived upstream."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def embed_input_digest(export_output_digest: str, model: str) -> str:
    """Vectors depend on the export and on the model that made them."""
    return chain(export_output_digest, model)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> str:
    """Write via a temp file in the same folder and rename; returns the sha256 of `data`.

    Readers see the old bytes or the new ones, never a torn file, whatever process dies.
    (No fsync: after an OS crash a day may need redoing, which verify and reconcile catch.)
    """
    try:
        return _write_atomic(path, data)
    except OSError as exc:  # a full disk or a read-only home: one line, not a traceback
        fault = StorageFault.from_os_error(exc, path)
        if fault is None:
            raise
        raise fault from exc


def _write_atomic(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()
