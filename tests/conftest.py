"""One temporary database per test, on SQLite and (when SOFTCOPY_TEST_DATABASE_URL names a
server) on PostgreSQL, plus a demo home to run stages against."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from softcopy.config import Settings, load_settings
from softcopy.db import dispose_engines, get_engine
from softcopy.demo import build_demo
from softcopy.memory import index

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # jp_fetch for the HTTP API tests

PG_URL = os.environ.get("SOFTCOPY_TEST_DATABASE_URL")
# pytest-xdist's workers run with COLUMNS=80, which fixes the width of a rich console made
# at import (the CLI's): tests that set COLUMNS, and subprocesses, would not get theirs
os.environ.pop("COLUMNS", None)
DEMO_TODAY = date(2026, 3, 31)


def pytest_report_header() -> str:
    if PG_URL:
        return f"database legs: sqlite, postgres ({PG_URL})"
    return "database legs: sqlite only; PostgreSQL leg SKIPPED (set SOFTCOPY_TEST_DATABASE_URL)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PG_URL:
        terminalreporter.write_line(
            "PostgreSQL leg skipped: SOFTCOPY_TEST_DATABASE_URL is not set", yellow=True
        )


@pytest.fixture(params=["sqlite", "postgres"] if PG_URL else ["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'softcopy.db'}"
        dispose_engines()
        return
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(  # pre-ping: a fault test may restart the server in between
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), pool_pre_ping=True
    )
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty softcopy home whose database is this test's database."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("SOFTCOPY_HOME", str(path))
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", database_url)
    monkeypatch.delenv("SOFTCOPY_TIMEZONE", raising=False)
    # one step at a time unless a test asks for parallel steps: a fault a test injects in
    # this process (monkeypatch) does not reach the step processes of parallel steps
    monkeypatch.setenv("SOFTCOPY_PARALLEL", "1")
    yield path
    index.close_all()


@pytest.fixture
def demo_home(home: Path) -> Path:
    build_demo(home, days=30, today=DEMO_TODAY)
    return home


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(home)


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return get_engine(settings.database_url)


@pytest.fixture
def ctx(demo_home: Path):
    """The service context over the demo home, with the clock at the demo's today."""
    from datetime import UTC, datetime

    from softcopy.ingestion.service import open_context

    context = open_context(demo_home)
    context.clock = lambda: datetime.now(UTC).replace(
        year=DEMO_TODAY.year, month=DEMO_TODAY.month, day=DEMO_TODAY.day
    )
    return context


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3-compatible object store (SeaweedFS, tests/s3_server.py) on loopback ports,
    started once per session (per xdist worker); skips, saying why, where `weed` is absent."""
    from tests import s3_server as s3

    reason = s3.missing()
    if reason:
        pytest.skip(reason)
    with s3.seaweedfs_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server
