"""What a driver's or the OS's error says about the machine: a database that cannot be
reached, is locked past its busy timeout, is full or read-only; a disk that is full or
read-only. Such errors become EnvironmentFaults (one line, exit 3, HTTP 503); any other
error is a bug and stays loud.

The engine translates its drivers' errors as they happen (`fault_translator`, a
`handle_error` listener); `environment_fault` is the faces' last line of defence for an
error that got past every lower layer untranslated.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

from softcopy.errors import DatabaseFault, EnvironmentFault, StorageFault


class DatabaseUnavailable(DatabaseFault, OperationalError):
    """A DatabaseFault that is still a SQLAlchemy OperationalError, so code that retries
    transient database errors (a worker's heartbeat and day retries) keeps doing so,
    while every face sees a SoftcopyError with one line to show. The SQLAlchemy side is
    read through properties, so the error's facts (`vars()`) hold no SQL."""

    statement = None
    params = None
    hide_parameters = True
    ismulti = None

    def __init__(self, database: str, reason: str, cause: DBAPIError | None = None) -> None:
        # set by hand: the two bases' constructors do not cooperate
        self.database = database
        self.what = f"database {database}"
        self.reason = reason
        self._cause = cause
        self._detail: list[str] = []
        Exception.__init__(self, f"{self.what}: {reason}")

    @property
    def detail(self) -> list[str]:  # type: ignore[override]
        return self._detail

    def add_detail(self, msg: str) -> None:
        self._detail.append(msg)

    @property
    def orig(self) -> BaseException | None:  # type: ignore[override]
        return self._cause.orig if self._cause is not None else None

    @property
    def connection_invalidated(self) -> bool:  # type: ignore[override]
        return bool(self._cause is not None and self._cause.connection_invalidated)

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"

    def __reduce__(self) -> Any:
        return (self.__class__, (self.database, self.reason))


def fault_translator(display: str, read_only_folder: Path | None = None) -> Any:
    """A `handle_error` listener raising DatabaseUnavailable for faults of the machine;
    `read_only_folder` is the folder of a SQLite file opened read-only because of it."""

    def translate(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            return  # the pool is checking a connection: let it reconnect
        reason = database_fault_reason(context.original_exception, context.is_disconnect)
        if reason == SQLITE_READ_ONLY and read_only_folder is not None:
            reason = f"cannot write: its folder {read_only_folder} is read-only"
        if reason is not None:
            raise DatabaseUnavailable(display, reason, context.sqlalchemy_exception)

    return translate


SQLITE_READ_ONLY = "cannot write: the file or its folder is read-only"
# SQLite result codes that mean the machine (the file, the disk, another process)
_SQLITE_REASONS = (
    ("SQLITE_FULL", "the disk is full"),
    ("SQLITE_READONLY", SQLITE_READ_ONLY),
    ("SQLITE_BUSY", "locked by another process past the busy timeout"),
    ("SQLITE_LOCKED", "locked by another process past the busy timeout"),
    ("SQLITE_CANTOPEN", "cannot open the file"),
    ("SQLITE_IOERR", "input/output error (is the disk full or gone?)"),
    ("SQLITE_PERM", "permission denied"),
    ("SQLITE_NOTADB", "not a SQLite database"),
    ("SQLITE_CORRUPT", "the file is corrupt"),
)
# PostgreSQL SQLSTATE classes that mean the server or the machine, not the statement
_PG_STATES = {
    "08": "the connection failed",
    "53": "the server is out of resources",
    "57P": "the server is shutting down or restarting",
    "58": "the server hit a system error",
    "25006": "the server is read-only",
}


def sqlite_fault_reason(error: BaseException) -> str | None:
    """What a sqlite3 error says about the machine, or None when it is a bug."""
    if not isinstance(error, sqlite3.Error):
        return None
    name = getattr(error, "sqlite_errorname", "") or ""
    reason = next((r for code, r in _SQLITE_REASONS if name.startswith(code)), None)
    if reason is None and isinstance(error, sqlite3.OperationalError):
        message = str(error)  # a few errors come without a result code
        if "unable to open database file" in message:
            reason = "cannot open the file"
        elif "database or disk is full" in message:
            reason = "the disk is full"
        elif "readonly database" in message:
            reason = SQLITE_READ_ONLY
        elif "database is locked" in message:
            reason = "locked by another process past the busy timeout"
    return reason


def database_fault_reason(error: BaseException, disconnected: bool = False) -> str | None:
    """What a driver error says about the machine, or None when it is a bug (a statement
    the database rejects, a constraint, a serialization conflict the caller retries)."""
    if isinstance(error, sqlite3.Error):
        return sqlite_fault_reason(error)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        return None
    if not isinstance(error, psycopg.Error):
        return None
    state = getattr(error, "sqlstate", None)
    first_line = (str(error).strip().splitlines() or ["no answer"])[0]
    if state is None:
        if disconnected or isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
            return first_line if "connect" in first_line else f"connection lost: {first_line}"
        return None
    reason = _PG_STATES.get(state) or _PG_STATES.get(state[:3]) or _PG_STATES.get(state[:2])
    if reason is None:
        return f"connection lost: {first_line}" if disconnected else None
    return f"{reason}: {first_line}"


def environment_fault(error: BaseException) -> EnvironmentFault | None:
    """The EnvironmentFault an exception that escaped the lower layers stands for (the
    faces' last line of defence), or None when it is a bug and should stay loud."""
    if isinstance(error, EnvironmentFault):
        return error
    if isinstance(error, DBAPIError):
        reason = database_fault_reason(error.orig, error.connection_invalidated)
        return DatabaseFault(None, reason) if reason else None
    if isinstance(error, sqlite3.Error):
        reason = sqlite_fault_reason(error)
        return DatabaseFault(None, reason) if reason else None
    if isinstance(error, OSError):
        return StorageFault.from_os_error(error)
    return None
