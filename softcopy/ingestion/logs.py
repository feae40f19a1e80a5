"""Structured log rows: every transition, checkpoint, retry and error of a job.

Logs supplement state: nothing reads a status from here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
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


def query(
    session: Session,
    *,
    job_id: int,
    after_id: int = 0,
    level: LogLevel | None = None,
    limit: int = 500,
) -> list[LogRecord]:
    """A job's records after `after_id`, oldest first, at `level` or above."""
    statement = select(LogRecord).where(LogRecord.job_id == job_id, LogRecord.id > after_id)
    if level is not None:
        statement = statement.where(
            LogRecord.level.in_([lv for lv in LogLevel if lv.rank >= level.rank])  # type: ignore[attr-defined]
        )
    return list(session.exec(statement.order_by(LogRecord.id).limit(limit)))
