"""Bad settings and a sick machine through the CLI: one line on stderr naming what is wrong,
exit 2 for settings, exit 3 for the machine, never a traceback. (The faults made with real
mounts and a stopped database server are in tests/e2e/test_faults.py.)"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softcopy.cli.main import main
from softcopy.db import dispose_engines
from softcopy.demo import build_demo
from softcopy.memory import index
from tests.conftest import DEMO_TODAY


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home of its own (not one per database leg: these faults come before any database)."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("SOFTCOPY_HOME", str(path))
    for name in ("SOFTCOPY_DATABASE_URL", "SOFTCOPY_TIMEZONE", "SOFTCOPY_LEASE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield path
    index.close_all()
    dispose_engines()


def one_line(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the CLI; its stderr must be exactly one line and no traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return code, lines[0]


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("lease_timeout = -1", "lease_timeout = -1: must be a number of seconds between 1 and"),
        ("lease_timeout = nan", "lease_timeout = nan: must be a number of seconds"),
        ("sources = 5", "sources = 5: must be a table"),
        ("[sources.notes]\nkind = 'notes'\npath = 5", "sources.notes.path = 5"),
        ("database_url = 'garbage'", "database_url: not a database URL"),
        ("timezone = 7", "timezone = 7: must be a timezone name"),
    ],
)
@pytest.mark.parametrize("command", [["ingestion", "jobs"], ["memory", "search", "x"]])
def test_a_bad_setting_is_one_line_naming_file_and_key(
    home: Path, capsys, toml: str, names: str, command: list[str]
) -> None:
    (home / "softcopy.toml").write_text(toml + "\n")
    code, line = one_line(capsys, *command)
    assert code == 2
    assert f"{home / 'softcopy.toml'}: {names}" in line


def test_a_home_that_is_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "home").write_text("not a folder")
    code, line = one_line(capsys, "ingestion", "jobs", "--home", str(tmp_path / "home"))
    assert code == 2
    assert line == f"error: home {tmp_path / 'home'} is a file, not a folder"


def test_a_garbage_database_url_is_one_line(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", "postgres ql:/ /nowhere")
    code, line = one_line(capsys, "ingestion", "coverage")
    assert code == 2
    assert "SOFTCOPY_DATABASE_URL: not a database URL" in line


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("sqlite:///{home}/x.db?timeout=nan", "timeout must be a number of seconds from 0 to"),
        ("sqlite:///{home}/x.db?timeout=1e999", "timeout must be a number of seconds from 0 to"),
        ("sqlite:///{home}/x.db?mode=ro", "'mode' is not a SQLite URL option"),
        ("postgresql://ops@127.0.0.1:1/db?connect_timeout=abc", "connect_timeout must be a"),
        ("postgresql://ops@127.0.0.1:1/db?connect_timeout=-5", "connect_timeout must be a"),
        ("postgresql://ops@127.0.0.1:1/db?foo=bar", "'foo' is not a PostgreSQL connection"),
    ],
)
def test_a_database_url_with_bad_options_is_one_line_and_exit_2(
    home: Path, capsys, monkeypatch, query: str, names: str
) -> None:
    """The driver would raise on these at the first connection (a traceback) or ignore them."""
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", query.format(home=home))
    code, line = one_line(capsys, "ingestion", "jobs")
    assert code == 2
    assert line.startswith("error: SOFTCOPY_DATABASE_URL: database ") and names in line


def test_an_unreachable_database_is_one_line_and_exit_3(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", "postgresql://ops:s3cret@127.0.0.1:1/softcopy")
    code, line = one_line(capsys, "ingestion", "jobs")
    assert code == 3
    assert line.startswith("error: database postgresql://ops:***@127.0.0.1:1/softcopy: ")
    assert "s3cret" not in line and "refused" in line.lower()


def test_a_database_locked_past_the_busy_timeout_is_one_line_and_exit_3(
    home: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    build_demo(home, days=7, today=DEMO_TODAY)
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}?timeout=0.2"
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", url)
    assert main(["ingestion", "jobs"]) == 0  # made and migrated while nobody holds it
    capsys.readouterr()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, line = one_line(capsys, "ingestion", "coverage")  # coverage writes a snapshot
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 3
    assert line == f"error: database {path}: locked by another process past the busy timeout"
    assert main(["ingestion", "coverage"]) == 0  # the lock is gone: it works again


def test_the_installed_command_prints_no_traceback_for_an_unreachable_database(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTCOPY_")}
    env |= {
        "SOFTCOPY_HOME": str(tmp_path),
        "SOFTCOPY_DATABASE_URL": "postgresql://ops@127.0.0.1:1/softcopy",
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("softcopy")), "ingestion", "coverage"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: database postgresql://ops@127.0.0.1:1/softcopy: ")


def test_a_connection_the_pool_could_not_reset_prints_nothing(tmp_path: Path) -> None:
    """After a Ctrl-C that interrupted a query, SQLAlchemy logs (and swallows) the failed
    reset of the connection; Python's last-resort handler printed its traceback above the
    CLI's one line (test_interrupt, PostgreSQL leg, under load)."""
    script = (
        "import logging, sys\n"
        "from softcopy.cli.main import main\n"
        "main(['--version'])\n"
        "try:\n"
        "    raise KeyboardInterrupt\n"
        "except KeyboardInterrupt:\n"
        "    logging.getLogger('sqlalchemy.pool.impl.QueuePool').error(\n"
        "        'Exception during reset or similar', exc_info=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_main_quiets_the_pool_with_one_handler_however_often_it_runs() -> None:
    """main() runs many times in one process (the tests): the handler is added once."""
    for _ in range(3):
        assert main(["--version"]) == 0
    handlers = logging.getLogger("sqlalchemy.pool").handlers
    assert sum(isinstance(h, logging.NullHandler) for h in handlers) == 1
