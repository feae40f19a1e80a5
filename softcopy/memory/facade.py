"""The memory layer's façade for the faces that use it without the control plane: the
legacy `ledger` and `cache` commands and `source list`. Like the service, every function
is keyword-only, opens and ends its own transaction, and returns plain values; the faces
open no database session themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import session_scope
from softcopy.memory import cache, ledger, scan
from softcopy.memory.stages import Stage
from softcopy.memory.tables import LedgerEntry


@dataclass(frozen=True)
class LedgerRows:
    rows: list[LedgerEntry]
    undated: dict[str, int]  # per source: records skipped whose day cannot be told


@dataclass(frozen=True)
class SourceSummary:
    name: str
    kind: str
    path: str
    options: dict[str, object]
    days: int  # days the last scan found
    first_day: date | None
    last_day: date | None


def ledger_rows(
    *,
    settings: Settings,
    engine: Engine,
    sources: list[str] | None,
    stage: Stage | None = None,
    start: date | None = None,
    end: date | None = None,
    limit: int | None = None,
) -> LedgerRows:
    """Ledger entries of `sources` (all of them when None), each source's at most `limit`."""
    selected = [s.name for s in settings.selected_sources(sources)]
    names: list[str | None] = list(selected) if sources else [None]
    with Session(engine) as session:
        rows = [
            row
            for name in names
            for row in ledger.entries(
                session, source=name, stage=stage, start=start, end=end, limit=limit
            )
        ]
        undated = {name: ledger.undated_skips(session, source=name) for name in selected}
    return LedgerRows(rows=rows, undated=undated)


def ledger_day(*, settings: Settings, engine: Engine, source: str, day: date) -> list[LedgerEntry]:
    """Every stage's ledger entry for one (source, day)."""
    settings.source(source)  # an unknown source is a user error naming it
    with Session(engine) as session:
        return ledger.entries(session, source=source, start=day, end=day)


def cache_stats(*, engine: Engine) -> list[cache.CacheStats]:
    with Session(engine) as session:
        return cache.stats(session)


def cache_prune(*, engine: Engine, unused_since: datetime) -> int:
    """Drop cached vectors unused since then; returns how many."""
    with session_scope(engine) as session:
        return cache.prune(session, unused_since=unused_since)


def cache_clear(*, engine: Engine, model: str | None = None) -> int:
    """Empty the embedding cache (or one model's part of it); returns how many were dropped."""
    with session_scope(engine) as session:
        return cache.clear(session, model=model)


def source_summaries(*, settings: Settings, engine: Engine) -> list[SourceSummary]:
    """The configured sources with the days their last scan found."""
    summaries = []
    with Session(engine) as session:
        for config in settings.selected_sources(None):
            days = scan.source_days(session, config.name, None, None)
            summaries.append(
                SourceSummary(
                    name=config.name,
                    kind=config.kind,
                    path=str(config.path),
                    options=config.options,
                    days=len(days),
                    first_day=days[0].day if days else None,
                    last_day=days[-1].day if days else None,
                )
            )
    return summaries
