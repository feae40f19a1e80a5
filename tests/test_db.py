"""Migrations apply on first use, are idempotent, and the same schema runs on every backend."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from softcopy.db import dispose_engines, get_engine, parse_url, session_scope
from softcopy.errors import ConfigError, DatabaseFault
from softcopy.ingestion.states import Stage
from softcopy.memory import ledger
from softcopy.memory.stage import StageResult


def test_first_use_migrates_to_head_and_keeps_rows(database_url: str) -> None:
    engine = get_engine(database_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
    tables = set(inspect(engine).get_table_names())
    assert {"ledger", "embedding_cache", "source_day", "source_item"} <= tables

    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with session_scope(engine) as session:
        ledger.record(
            session,
            StageResult(Stage.export, "s", date(2026, 3, 1), 1, 0, "i", "o"),
            done_by="test",
            now=now,
        )
    dispose_engines()
    again = get_engine(database_url)  # a second process: migrate is a no-op, rows intact
    with session_scope(again) as session:
        entry = ledger.get(session, source="s", day=date(2026, 3, 1), stage=Stage.export)
        assert entry is not None and entry.done_at == now and entry.stage is Stage.export


def test_a_failed_use_case_leaves_no_rows(database_url: str) -> None:
    engine = get_engine(database_url)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        with session_scope(engine) as session:
            result = StageResult(Stage.embed, "s", date(2026, 3, 2), 3, 0, "i", "o")
            ledger.record(session, result, done_by="t", now=now)
            session.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with session_scope(engine) as session:
        assert ledger.entries(session) == []


def test_a_database_made_by_the_first_migration_upgrades_with_its_rows(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from softcopy.db import _create

    raw = _create(database_url)
    config = Config()
    config.set_main_option("script_location", "softcopy:migrations")
    with raw.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO ledger (source, day, stage, outcome, input_digest, output_digest,"
                " items, skipped, attempted_at, done_by) VALUES ('notes', '2026-01-02', 'export',"
                " 'ok', 'in', 'out', 3, 0, '2026-01-02 10:00:00', 'cli')"
            )
        )
    assert "ingestion_job" not in inspect(raw).get_table_names()
    raw.dispose()

    engine = get_engine(database_url)  # first use: upgrades to head
    assert {"ingestion_job", "checkpoint", "cell_claim"} <= set(inspect(engine).get_table_names())
    with session_scope(engine) as session:
        entry = ledger.get(session, source="notes", day=date(2026, 1, 2), stage=Stage.export)
        assert entry is not None and entry.items == 3 and entry.output_digest == "out"


def test_the_head_read_from_the_scripts_text_is_alembics_head(database_url: str) -> None:
    """get_engine decides 'already at head' without importing alembic: the head it reads
    from the scripts' text is the one alembic computes, and a schema below it still
    upgrades (the previous test); at head, a new process's check imports no alembic."""
    import subprocess
    import sys

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from softcopy.db import _at_head, head_revision

    config = Config()
    config.set_main_option("script_location", "softcopy:migrations")
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
    engine = get_engine(database_url)
    assert _at_head(engine)
    probe = (
        "import sys; from softcopy.db import get_engine; get_engine(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, database_url], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "False"


def test_migrations_match_the_models(database_url: str) -> None:
    """Every table change ships as a migration: the migrated schema equals the models."""
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    import softcopy.models  # noqa: F401

    engine = get_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_a_database_locked_past_the_busy_timeout_is_a_fault_that_retries_still_see(
    tmp_path,
) -> None:
    """The engine turns a driver's lock timeout into one line (DatabaseFault, no SQL in it)
    that is still an OperationalError, so a worker's heartbeat and day retries go on."""
    path = tmp_path / "busy.db"
    engine = get_engine(f"sqlite:///{path}?timeout=0.1")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with session_scope(engine) as session:
            ledger.record_failure(
                session,
                source="s",
                day=date(2026, 3, 1),
                stage=Stage.export,
                error="x",
                done_by="t",
                now=datetime(2026, 3, 1, tzinfo=UTC),
            )
    except DatabaseFault as fault:
        assert isinstance(fault, OperationalError)
        assert str(fault) == f"database {path}: locked by another process past the busy timeout"
        assert fault.database == str(path) and "INSERT" not in repr(vars(fault))
    else:
        raise AssertionError("a write under another process's exclusive lock went through")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        dispose_engines()


def test_database_urls_softcopy_cannot_use_are_config_errors() -> None:
    for url, message in [
        ("garbage", "not a database URL"),
        ("mysql://h/db", "database mysql://h/db: unsupported backend 'mysql'"),
        ("sqlite:///x.db?timeout=soon", "timeout must be a number of seconds"),
        ("sqlite:///x.db?timeout=nan", "timeout must be a number of seconds from 0 to 3600"),
        ("sqlite:///x.db?timeout=-1", "timeout must be a number of seconds from 0 to 3600"),
        ("sqlite:///x.db?nolock=1", "'nolock' is not a SQLite URL option"),
        # options the pysqlite dialect converts: its ValueError was a traceback
        ("sqlite:///x.db?detect_types=abc", "detect_types must be a whole number"),
        ("sqlite:///x.db?cached_statements=x", "cached_statements must be a whole number"),
        ("sqlite:///x.db?check_same_thread=maybe", "check_same_thread must be true or false"),
        ("sqlite:///x.db?uri=perhaps", "uri must be true or false"),
        ("postgresql://h/db?connect_timeout=0", "connect_timeout must be a number of seconds"),
        ("postgresql://h/db?connect_timeout=1.5", "connect_timeout must be whole seconds"),
        ("postgresql://h/db?sslmod=require", "'sslmod' is not a PostgreSQL connection option"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_url(url)
    assert parse_url("sqlite:///x.db?timeout=0.5&uri=true&nolock=1").query["nolock"] == "1"
    assert parse_url("sqlite:///x.db?uri=1&mode=ro").query["mode"] == "ro"  # 1 is true there
    assert parse_url("sqlite:///x.db?detect_types=1&check_same_thread=false").database == "x.db"
    assert parse_url("postgresql://h/db?connect_timeout=5&sslmode=require").database == "db"
