"""Structured log rows: every transition, checkpoint, retry and error of a job.

Logs supplement state: nothing reads a status from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from softcopy.ingestion.models import LogRecord
from softcopy.ingestion.states import LogLevel


def write(
    session: Session,
    *,
    event: str,
    message: str,
    now: datetime,
    level: LogLevel = LogLevel.info,
    job_id: int | None = None,
    step_id: int | None = None,
    source: str | None = None,
    day: date | None = None,
    **fields: Any,
) -> None:
    session.execute(
        insert(LogRecord.__table__),  # Core: one row per checkpoint, no ORM bookkeeping
        {
            "ts": now,
            "level": level,
            "event": event,
            "job_id": job_id,
            "step_id": step_id,
            "source": source,
            "day": day,
            "message": message,
            "fields": fields,
        },
    )


@dataclass(frozen=True)
class LogFilter:
    """Which of a job's rows: at `level` or above, of a step, a source, a day."""

    level: LogLevel | None = None
    step_id: int | None = None
    source: str | None = None
    day: date | None = None

    def where(self, statement: Select) -> Select:  # type: ignore[type-arg]
        if self.level is not None:
            statement = statement.where(
                LogRecord.level.in_([lv for lv in LogLevel if lv.rank >= self.level.rank])  # type: ignore[attr-defined]
            )
        for column, value in (
            (LogRecord.step_id, self.step_id),
            (LogRecord.source, self.source),
            (LogRecord.day, self.day),
        ):
            if value is not None:
                statement = statement.where(column == value)
        return statement


def query(
    session: Session,
    *,
    job_id: int,
    after_id: int = 0,
    level: LogLevel | None = None,
    limit: int = 500,
    where: LogFilter | None = None,
) -> list[LogRecord]:
    """A job's records after `after_id`, oldest first, at `level` or above."""
    where = where or LogFilter(level=level)
    statement = select(LogRecord).where(LogRecord.job_id == job_id, LogRecord.id > after_id)
    return list(session.exec(where.where(statement).order_by(LogRecord.id).limit(limit)))


def newest(
    session: Session,
    *,
    job_id: int,
    where: LogFilter,
    before_id: int | None = None,
    offset: int = 0,
    limit: int = 200,
) -> list[LogRecord]:
    """The newest `limit` matching records (before `before_id`, skipping `offset` newer
    ones), returned oldest first."""
    statement = select(LogRecord).where(LogRecord.job_id == job_id)
    if before_id is not None:
        statement = statement.where(LogRecord.id < before_id)
    statement = where.where(statement).order_by(LogRecord.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
    return list(reversed(list(session.exec(statement))))


def count(session: Session, *, job_id: int, where: LogFilter, before_id: int | None = None) -> int:
    """How many records match (before `before_id`)."""
    statement = sa_select(func.count()).select_from(LogRecord).where(LogRecord.job_id == job_id)
    if before_id is not None:
        statement = statement.where(LogRecord.id < before_id)
    return session.execute(where.where(statement)).scalar_one()
