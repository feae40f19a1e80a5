"""The engine and sessions for the one database that holds the ledger, the cache and the
control plane; migrations are applied on first use.

SQLite (the default) gets WAL and a busy timeout so that several processes can share it;
PostgreSQL runs the same code through `SOFTCOPY_DATABASE_URL`.

Faults of the machine become `DatabaseFault`s at the engine (`faults.fault_translator`),
so no face ever prints a driver's traceback: an unreachable server, a file locked past the
busy timeout, a full disk, a read-only home. A home whose folder cannot be written is
opened read-only (no WAL switch, no migration), so reads keep working there.
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Table, event, types
from sqlalchemy import util as sa_util
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session, create_engine

from softcopy.errors import ConfigError, DatabaseFault, StorageFault
from softcopy.faults import fault_translator

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

SQLITE_BUSY_TIMEOUT_MS = 30_000  # default; `?timeout=<seconds>` in a sqlite URL overrides it
PG_CONNECT_TIMEOUT_S = 10  # default; `?connect_timeout=<seconds>` in the URL overrides it

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(types.TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_type(enum: type[StrEnum]) -> types.Enum:
    """A string column that only takes `enum`'s values (no native type: easy to migrate)."""
    longest = max(len(member.value) for member in enum)
    return types.Enum(
        enum,
        native_enum=False,
        length=max(24, longest),  # room to add values without widening the column
        values_callable=lambda e: [m.value for m in e],
    )


def within(column: Any, start: Any | None, end: Any | None) -> list[Any]:
    """WHERE clauses keeping `column` in [start, end]; an open end adds none."""
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column <= end)
    return clauses


def dialect_insert(
    bind: Engine | Connection | str, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with ON CONFLICT in the dialect of `bind` (an engine, a connection, or a
    dialect's name), its module imported when used: a SQLite home never loads PostgreSQL's
    dialect."""
    name = bind if isinstance(bind, str) else bind.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url`, migrated to the newest schema."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Forget every engine (tests, and child processes after fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when it is already there.

    The usual case, a schema already at head, is decided without alembic: the head comes
    from the migration scripts' `revision`/`down_revision` lines (read as text, not
    imported) and the current revision from `alembic_version`. Importing alembic and every
    script cost each new process (step processes, warm kernels) about 100 ms."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "softcopy:migrations")
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    if _read_only(engine):
        raise DatabaseFault(
            display_url(engine.url),
            f"cannot bring the schema from {current or 'nothing'} to {head}: "
            "its folder is read-only",
        )
    with _migration_lock(engine), engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


_REVISION = re.compile(r"^revision(?:\s*:[^=\n]*)?\s*=\s*[\"']([^\"']+)[\"']\s*$", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:None|[\"']([^\"']+)[\"'])\s*$", re.M)


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the scripts' text; None when the text
    does not say it plainly (a merge, a revision written another way): alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _at_head(engine: Engine) -> bool:
    """Is the schema at the newest migration? False also when this cannot be told
    without alembic (no alembic_version table yet, several rows, an unplain script)."""
    head = head_revision()
    if head is None:
        return False
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "alembic_version"):
            return False
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return [row[0] for row in rows] == [head]


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise concurrent first uses across processes."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(7411)")
            conn.commit()
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7411)")
                conn.commit()


def _create(url: str) -> Engine:
    parsed = parse_url(url)
    display = display_url(parsed)
    read_only = False
    if parsed.get_backend_name() == "sqlite":
        engine = _create_sqlite(parsed)
        read_only = _read_only(engine)
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        try:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        except ImportError as exc:
            raise ConfigError(f"database {display}: its driver is not installed ({exc})") from None
    read_only_folder = Path(display).parent if read_only else None
    event.listen(engine, "handle_error", fault_translator(display, read_only_folder))
    return engine


def parse_url(url: str) -> URL:
    """A database URL softcopy can use (sqlite or postgresql), else ConfigError."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "not a database URL; expected sqlite:///<path> or postgresql://<user>@<host>/<db>"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database {display_url(parsed)}: unsupported backend "
            f"{parsed.get_backend_name()!r}; use sqlite or postgresql"
        )
    _check_options(parsed)
    return parsed


URL_TIMEOUT_MAX_S = 3600  # the longest `?timeout=` / `?connect_timeout=` a URL may ask for
# what SQLAlchemy's pysqlite dialect reads from a URL; anything else it would ignore
_SQLITE_OPTIONS = frozenset(
    ("timeout", "uri", "isolation_level", "check_same_thread", "cached_statements", "detect_types")
)
# those it converts (a bad value is its ValueError at the first connection): to what
_SQLITE_TYPED = {
    "uri": bool,
    "check_same_thread": bool,
    "cached_statements": int,
    "detect_types": int,
}


def _check_options(parsed: URL) -> None:
    """The URL's options are ones the driver takes, with values it can use: a bad one is
    a ConfigError here, not a driver's traceback at the first connection."""
    shown = display_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        if "timeout" in parsed.query:
            _url_seconds(shown, "timeout", parsed.query["timeout"], minimum=0)
        for key, kind in _SQLITE_TYPED.items():
            if key in parsed.query and not _converts(parsed.query[key], kind):
                what = "true or false" if kind is bool else "a whole number"
                raise ConfigError(f"database {shown}: {key} must be {what}")
        unknown = set(parsed.query) - _SQLITE_OPTIONS
        if unknown and not _sqlite_uri(parsed):  # with uri=true, SQLite's own
            raise ConfigError(
                f"database {shown}: {sorted(unknown)[0]!r} is not a SQLite URL option "
                "(timeout; SQLite's URI options need uri=true)"
            )
        return
    for key, value in parsed.query.items():
        if key == "connect_timeout":
            seconds = _url_seconds(shown, key, value, minimum=1)
            if seconds != int(seconds):
                raise ConfigError(f"database {shown}: connect_timeout must be whole seconds")
            continue
        try:
            from psycopg import ProgrammingError
            from psycopg.conninfo import make_conninfo
        except ImportError:
            return  # _create names the missing driver
        try:
            make_conninfo(**{key: value if isinstance(value, str) else ",".join(value)})
        except ProgrammingError:  # libpq knows no such option
            raise ConfigError(
                f"database {shown}: {key!r} is not a PostgreSQL connection option"
            ) from None


def _converts(value: Any, kind: type) -> bool:
    """Does SQLAlchemy's pysqlite dialect take `value` (one URL value) as a `kind`?"""
    try:
        if not isinstance(value, str):
            return False  # given twice
        (sa_util.asbool if kind is bool else int)(value)
    except ValueError:
        return False
    return True


def _sqlite_uri(parsed: URL) -> bool:
    """Is the SQLite database named as a URI (`?uri=true`, or 1, yes, on: as the dialect
    reads it)? Its other options are then SQLite's own."""
    return bool(sa_util.asbool(parsed.query.get("uri", False)))


def _url_seconds(shown: str, key: str, value: Any, *, minimum: int) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (math.isfinite(seconds) and minimum <= seconds <= URL_TIMEOUT_MAX_S):
        raise ConfigError(
            f"database {shown}: {key} must be a number of seconds "
            f"from {minimum} to {URL_TIMEOUT_MAX_S}"
        )
    return seconds


def display_url(url: URL) -> str:
    """How a database is named in messages: a SQLite file's path; a server URL without
    its password or options."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ":memory:"
        return database.removeprefix("file:")
    shown = url.set(query={}, drivername=url.get_backend_name())
    return shown.render_as_string(hide_password=True)


def hide_password(database_url: str) -> str:
    """The URL as it may be written down (in an executed notebook): its password, if any,
    as `***`."""
    return make_url(database_url).render_as_string(hide_password=True)


def _create_sqlite(parsed: URL) -> Engine:
    timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
    if "timeout" in parsed.query:  # a finite number of seconds: parse_url checked it
        timeout = float(parsed.query["timeout"])  # type: ignore[arg-type]
        parsed = parsed.difference_update_query(["timeout"])
    database = parsed.database
    read_only = False
    if database and database != ":memory:" and not _sqlite_uri(parsed):
        path = Path(database)
        _make_folder(path.parent, f"the database {path}")
        if not writable(path):
            parsed = _read_only_url(parsed, path)
            read_only = True
    engine = create_engine(parsed, connect_args={"timeout": timeout})
    event.listen(engine, "connect", _sqlite_pragmas(int(timeout * 1000), wal=not read_only))
    return engine


def writable(path: Path) -> bool:
    """Can this process write `path` (a file that may not exist yet) and its folder (or,
    when the folder does not exist yet, the nearest folder that does)?"""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def _make_folder(folder: Path, what: str) -> None:
    if folder.is_dir():
        return
    if folder.exists():
        raise ConfigError(f"{folder} is not a folder: it cannot hold {what}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{folder} cannot be made: part of its path is a file") from None
    except OSError as exc:
        fault = StorageFault.from_os_error(exc, folder)
        if fault is None:
            raise
        raise fault from None


def _read_only_url(parsed: URL, path: Path) -> URL:
    """A URL that opens `path` without writing anything beside it.

    `mode=ro` reads a WAL database only when its -shm file exists (or can be made);
    without one, `immutable=1` reads the main file, which is complete when no -wal file
    holds pages not yet copied back into it."""
    if not path.exists():
        raise DatabaseFault(str(path), f"does not exist, and its folder {path.parent} is read-only")
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if shm.exists():
        flags = {"mode": "ro"}
    elif not wal.exists() or wal.stat().st_size == 0:
        flags = {"immutable": "1"}
    else:
        raise DatabaseFault(
            str(path), f"cannot be read: {wal.name} holds changes and the folder is read-only"
        )
    return parsed.set(database=f"file:{path}").update_query_dict({**flags, "uri": "true"})


def _read_only(engine: Engine) -> bool:
    query = engine.url.query
    return query.get("mode") == "ro" or query.get("immutable") == "1"


def _sqlite_pragmas(busy_timeout_ms: int, *, wal: bool) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if wal:  # a read-only open never switches the journal mode (that is a write)
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect
