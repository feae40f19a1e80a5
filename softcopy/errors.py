"""Every error softcopy raises on purpose.

    SoftcopyError                 the one root; faces map it to exit/HTTP codes
    ├── UserError                 bad input: exit 2, HTTP 400
    │   ├── ConfigError           softcopy.toml or settings are wrong
    │   ├── UnknownSource         no source of that name
    │   └── BadDate               a date or range that does not parse or is reversed
    ├── NotFound                  an id that does not exist: exit 2, HTTP 404
    ├── Conflict                  the request contradicts persisted state: exit 2, HTTP 409
    └── OperationFailed           the operation ran and found a failure: exit 1, HTTP 500
        ├── BadRecord             a source record that cannot be read (file, line)
        └── StageFailed           a stage could not complete a (source, day)

Facts travel as attributes so each face can render them its own way.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path


class SoftcopyError(Exception):
    """Root of every error softcopy raises on purpose."""


class UserError(SoftcopyError):
    """The caller asked for something malformed."""


class ConfigError(UserError):
    """Settings or softcopy.toml are invalid."""


class UnknownSource(UserError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        hint = f"; known sources: {', '.join(known)}" if known else "; no sources are configured"
        super().__init__(f"unknown source {name!r}{hint}")


class BadDate(UserError):
    """A date or day range that does not parse or is reversed."""


class NotFound(SoftcopyError):
    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class Conflict(SoftcopyError):
    """The request contradicts persisted state (held cells, stale plans, illegal moves)."""


class OperationFailed(SoftcopyError):
    """The operation ran and found a failure."""


class BadRecord(OperationFailed):
    """One record of a source cannot be read; names the file and where in it."""

    def __init__(
        self, path: Path | str, where: str | None, reason: str, day: date | None = None
    ) -> None:
        self.path = str(path)
        self.where = where
        self.reason = reason
        self.day = day
        location = f"{self.path}:{where}" if where else self.path
        super().__init__(f"{location}: {reason}")


class StageFailed(OperationFailed):
    def __init__(self, stage: str, source: str, day: date, reason: str) -> None:
        self.stage = stage
        self.source = source
        self.day = day
        self.reason = reason
        super().__init__(f"{stage} {source} {day.isoformat()}: {reason}")
