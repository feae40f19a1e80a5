"""What the three stages share: the context they run in, the result they return, and
their input digests; their artifacts are keys that memory.artifacts writes atomically."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import utcnow
from softcopy.errors import BadRecord, StageFailed
from softcopy.memory import ledger, scan
from softcopy.memory.artifacts import export_key, vectors_key
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import Source, open_source
from softcopy.memory.stages import Stage

if TYPE_CHECKING:
    from softcopy.memory.embedders import Embedder


@dataclass
class PendingWrites:
    """Writes to the database that a job's step defers to its next group commit, so that
    no transaction (and, on SQLite, no write lock) stays open while a day's work runs:
    the days' ledger rows, and the embedding cache's new vectors."""

    ledger: list[dict[str, Any]] = field(default_factory=list)
    vectors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def write(self, session: Session) -> None:
        """Execute them in the caller's transaction (a statement batch each), and forget them."""
        ledger.upsert(session, self.ledger)
        if self.vectors:
            from softcopy.memory import cache

            cache.store_rows(session, list(self.vectors.values()))
        self.clear()

    def clear(self) -> None:
        self.ledger.clear()
        self.vectors.clear()


@dataclass(frozen=True)
class ShrinkGuard:
    """Publish's own check that a day keeps its published items, whatever happened to the
    source since the plan was checked (a queued job claimed after the file was truncated,
    a file cut while the job runs): publish never empties a day the index holds items of,
    and removes some of a day's items only from `window_start` on (None: on no day; a job
    of catch_up_recent passes its lookback window's first day, the legacy runner
    `date.min`: every day it is asked to redo)."""

    window_start: date | None = None

    def check(self, source: str, day: date, published: int, remaining: int) -> None:
        """Refuse (ShrinkRefused) to replace `published` items of the day by `remaining`."""
        if remaining >= published:
            return
        outside = self.window_start is None or day < self.window_start
        if remaining == 0 or outside:
            raise ShrinkRefused(source, day, published, remaining)


class ShrinkRefused(StageFailed):
    """Publishing a day would remove published items its run was not allowed to remove."""

    def __init__(self, source: str, day: date, published: int, remaining: int) -> None:
        self.published = published
        self.remaining = remaining
        super().__init__(
            Stage.publish,
            source,
            day,
            f"would remove {published - remaining} of {published} published items "
            f"({published} → {remaining}); refused unless removing published items is allowed",
        )


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
    # set by a job's step: ledger and cache writes wait for the step's group commit
    pending: PendingWrites | None = None
    # publish refuses to remove published items beyond what it allows; None: no check
    shrink_guard: ShrinkGuard | None = None
    # (source, stage) → the upstream ledger rows of the days ahead, read once per step
    _upstream: dict[tuple[str, Stage], dict[tuple[date, Stage], Any]] = field(
        default_factory=dict, repr=False
    )
    # source → the publish ledger rows of its days ahead (what they hold now), read once
    _published: dict[str, dict[tuple[date, Stage], Any]] = field(default_factory=dict, repr=False)

    def source(self, name: str) -> Source:
        """The opened source, its scan index refreshed once for this context."""
        if name not in self._sources:
            opened = open_source(self.settings.source(name), self.settings.timezone)
            scan.refresh(self.session, opened)
            self._sources[name] = opened
        return self._sources[name]

    def refreshed(self, name: str) -> bool:
        """Whether `source(name)` has opened (and refreshed the scan of) that source."""
        return name in self._sources

    @property
    def embedder(self) -> Embedder:
        from softcopy.memory.embedders import get_embedder  # numpy: imported when a stage runs

        return self.embedder_override or get_embedder(self.settings.embedder)

    def record(self, result: StageResult) -> None:
        """The stage's result as its ledger entry: now, or at the step's group commit."""
        if self.pending is None:
            entry = ledger.record(self.session, result, done_by=self.done_by, now=self.clock())
            # the later stages of this run read it as their upstream entry from now on
            for (source, _), entries in self._upstream.items():
                if source == result.source:
                    entries[(result.day, result.stage)] = entry
        else:
            self.pending.ledger.append(ledger.row(result, done_by=self.done_by, now=self.clock()))

    def published(self, source: str, day: date) -> int:
        """Items the day's last good publish put in the index (0: none). For the days
        ahead (a job's step, the runner's days) the publish entries are read once."""
        ahead = self.days_ahead.get(source, ())
        if day in ahead:
            if source not in self._published:
                self._published[source] = ledger.entries_for(
                    self.session, source, list(ahead), [Stage.publish]
                )
            entry = self._published[source].get((day, Stage.publish))
        else:
            entry = ledger.get(self.session, source=source, day=day, stage=Stage.publish)
        return entry.items if entry is not None and entry.output_digest is not None else 0

    def upstream(self, source: str, day: date, stage: Stage, wanted_by: Stage) -> Any:
        """The ledger entry of an upstream stage, which must describe a good run. For the
        days the caller has ahead (a job's step, whose upstream steps are over; the runner's
        days), the entries are read once, one query for them all; in the runner, what a stage
        records afterwards replaces its entry there (`record`)."""
        ahead = self.days_ahead.get(source, ())
        entry = None
        if day in ahead:
            key = (source, wanted_by)
            if key not in self._upstream:
                stages = [s for s in Stage if list(Stage).index(s) < list(Stage).index(wanted_by)]
                self._upstream[key] = ledger.entries_for(self.session, source, list(ahead), stages)
            entry = self._upstream[key].get((day, stage))
        else:
            entry = ledger.get(self.session, source=source, day=day, stage=stage)
        if entry is None or entry.output_digest is None:
            raise StageFailed(wanted_by, source, day, f"no {stage} yet; run {stage} first")
        return entry


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    source: str
    day: date
    items: int
    skipped: int
    input_digest: str
    output_digest: str
    artifact: str | None = None  # where the artifact was written (a path or a URL)
    artifact_sha: str | None = None  # sha256 of the artifact's bytes, as the ledger records
    problems: tuple[str, ...] = ()  # bad records skipped (or found) on the way


def export_path(settings: Settings, source: str, day: date) -> Path:
    """The file of a day's export, where artifacts are in a local folder (the default);
    stages go through memory.artifacts, which also knows object stores."""
    return Path(settings.artifacts_root) / export_key(source, day)


def vectors_path(settings: Settings, source: str, day: date) -> Path:
    """The file of a day's vectors, where artifacts are in a local folder (the default)."""
    return Path(settings.artifacts_root) / vectors_key(source, day)


def chain(*parts: str) -> str:
    """A digest over digests and names: how a stage's input digest is derived upstream."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def embed_input_digest(export_output_digest: str, model: str) -> str:
    """Vectors depend on the export and on the model that made them."""
    return chain(export_output_digest, model)
