"""What every service call needs (settings, the database, a clock) and the small helpers
the use cases share.

The helpers import what they call (the job table's code, the sources, the artifacts) when
called: opening a context and reading a coverage snapshot (the dashboard's first paint)
loads neither numpy nor psutil nor the runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine, session_scope, utcnow
from softcopy.ingestion.models import (
    IngestionJob,
    IngestionPlan,
)

if TYPE_CHECKING:
    from softcopy.ingestion.coverage import Presence


@dataclass
class Context:
    """What every service call needs: settings, the database, and a clock (a parameter, so
    tests can pass their own)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utcnow

    def today(self) -> date:
        return self.clock().astimezone(self.settings.timezone).date()


def open_context(home: Path | str | None = None) -> Context:
    settings = load_settings(home)
    return Context(settings=settings, engine=get_engine(settings.database_url))


Listed = TypeVar("Listed", IngestionPlan, IngestionJob)


def newest(
    ctx: Context, model: type[Listed], status: StrEnum | None, limit: int, offset: int
) -> list[Listed]:
    with Session(ctx.engine) as session:
        query = select(model)
        if status is not None:
            query = query.where(model.status == status)
        query = query.order_by(model.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
        return list(session.scalars(query))


def expire_leases(ctx: Context) -> list[int]:
    """End jobs whose worker is gone, in a transaction of its own (see jobs.expire_leases)."""
    from softcopy.ingestion import jobs

    with session_scope(ctx.engine) as session:
        return jobs.expire_leases(session, now=ctx.clock(), timeout=ctx.settings.lease_timeout)


def refresh_sources(ctx: Context, session: Session, names: list[str]) -> None:
    from softcopy.memory import scan
    from softcopy.memory.sources import open_source

    for name in names:
        scan.refresh(session, open_source(ctx.settings.source(name), ctx.settings.timezone))


def source_names(ctx: Context, sources: list[str] | None) -> list[str]:
    return [s.name for s in ctx.settings.selected_sources(sources)]


def artifact_presence(ctx: Context) -> Presence:
    """How coverage tells which current cells' artifacts are still in place."""
    from softcopy.memory import artifacts

    return partial(artifacts.present_days, ctx.settings)


def embed_model(ctx: Context) -> str:
    from softcopy.memory.embedders import get_embedder

    return get_embedder(ctx.settings.embedder).name
