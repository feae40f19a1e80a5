"""Migrations that rename: the values stay, in both directions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlmodel import select

from softcopy.db import get_engine, session_scope
from softcopy.ingestion.models import IngestionJob, IngestionPlan
from softcopy.ingestion.states import JobStatus, PlanMode, PlanStatus

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _alembic(conn, action, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "softcopy:migrations")
    config.attributes["connection"] = conn
    action(config, revision)


def test_0007_renames_engine_to_executor_and_days_to_cells_keeping_values(
    database_url: str,
) -> None:
    engine = get_engine(database_url)  # head
    with session_scope(engine) as session:
        plan = IngestionPlan(
            created_at=NOW, mode=PlanMode.backfill_range, status=PlanStatus.applied, fingerprint="f"
        )
        session.add(plan)
        session.flush()
        job = IngestionJob(
            plan_id=plan.id,
            status=JobStatus.failed,
            executor="papermill",
            chunk_days=7,
            created_at=NOW,
            cells_total=9,
            cells_done=4,
        )
        session.add(job)

    with engine.begin() as conn:
        _alembic(conn, command.downgrade, "0006")
    columns = {c["name"] for c in inspect(engine).get_columns("ingestion_job")}
    assert {"engine", "days_total", "days_done"} <= columns
    assert not {"executor", "cells_total", "cells_done"} & columns
    with engine.connect() as conn:
        row = conn.execute(text("SELECT engine, days_total, days_done FROM ingestion_job")).one()
    assert tuple(row) == ("papermill", 9, 4)

    with engine.begin() as conn:
        _alembic(conn, command.upgrade, "head")
    with session_scope(engine) as session:
        (back,) = session.exec(select(IngestionJob)).all()
        assert (back.executor, back.cells_total, back.cells_done) == ("papermill", 9, 4)
