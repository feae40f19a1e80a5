"""Tables of the memory layer: the source scan index, the ledger and the embedding cache.

Tables only; the functions that read and write them live in scan.py, ledger.py, cache.py.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from softcopy.db import UTCDateTime, enum_type
from softcopy.memory.stages import Outcome, Stage


class SourceUnit(SQLModel, table=True):
    """A unit of a source as last scanned (a file, a commit) and its change stamp.

    For an append-only file (JSONL, mbox), where the scan read it to, a digest of the bytes
    before that point and how many records (lines, messages) they held: when only bytes
    after `read_to` are new, the next scan reads those alone (memory/scan.py)."""

    __tablename__ = "source_unit"
    source: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    stamp: str
    read_to: int | None = Field(default=None, sa_type=BigInteger)
    prefix_digest: str | None = None
    records: int | None = None


class SourceScan(SQLModel, table=True):
    """A source's listing stamp as of its last scan, for kinds that can tell cheaply that
    none of their units changed (a git repository whose refs all point where they did):
    then a refresh lists no units at all."""

    __tablename__ = "source_scan"
    source: str = Field(primary_key=True)
    listing: str


class SourceItem(SQLModel, table=True):
    """One item found by the scan: where it is and what it hashes to."""

    __tablename__ = "source_item"
    __table_args__ = (
        Index("ix_source_item_source_day", "source", "day"),
        Index("ix_source_item_source_unit", "source", "unit"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    unit: str
    day: date
    item_id: str
    content_hash: str
    locator: str


class SourceProblem(SQLModel, table=True):
    """A record the scan could not read (a bad record), or read only by repairing its text.

    `day` is null when the record gave no day: a problem of the source, which fails no day.
    A `repaired` row is a warning: the item is indexed, with U+FFFD for what was unreadable.
    """

    __tablename__ = "source_problem"
    __table_args__ = (Index("ix_source_problem_source_unit", "source", "unit"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str
    unit: str
    day: date | None = Field(default=None, index=True)
    location: str  # file, and line or message number
    reason: str
    repaired: bool = False


class SourceDay(SQLModel, table=True):
    """A day a source has data for: its item count and digest, as of the last scan."""

    __tablename__ = "source_day"
    source: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    items: int
    problems: int = 0
    digest: str


class LedgerEntry(SQLModel, table=True):
    """What a stage last did to a (source, day): digests in and out, counts, when, by whom."""

    __tablename__ = "ledger"
    source: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    stage: Stage = Field(primary_key=True, sa_type=enum_type(Stage))
    outcome: Outcome = Field(index=True, sa_type=enum_type(Outcome))
    input_digest: str | None = None  # of the last good run
    output_digest: str | None = None
    artifact_sha: str | None = None  # sha256 of the artifact's bytes, where a file is written
    items: int = 0
    skipped: int = 0
    done_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    attempted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    done_by: str  # "cli:memory export", "job:42", ...
    error: str | None = None


class EmbeddingCacheEntry(SQLModel, table=True):
    """A vector computed once per (model, content hash): unchanged items are never re-embedded."""

    __tablename__ = "embedding_cache"
    model: str = Field(primary_key=True)
    content_hash: str = Field(primary_key=True)
    dim: int
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    used_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
