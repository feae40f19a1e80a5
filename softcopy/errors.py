"""Every error softcopy raises on purpose (those marked * are defined beside the code that
raises them, in the module named, and listed here so the tree is whole).

    SoftcopyError                 the one root; faces map it to exit/HTTP codes
    ├── UserError                 bad input: exit 2, HTTP 400
    │   ├── ConfigError           softcopy.toml or settings are wrong
    │   │   └── SharedStorageNeeded *  dask workers would use their own disks (dask_executor)
    │   ├── UnknownSource         no source of that name
│   ├── UnknownExecutor       no executor of that name (see softcopy.registry)
    │   ├── SourceExists          a source name already reads another path or kind
    │   ├── NoSources             the home has no sources to work on
    │   ├── BadQuery *            a search query that does not parse (memory.query)
    │   ├── BadDate               a date or range that does not parse or is reversed
    │   └── FieldError            bad input about named fields (each face names them)
    │       ├── OutOfRange        a number outside its allowed range
    │       ├── MissingFields     fields a request needs but lacks
    │       └── ReversedRange     an end day before the start day (also a BadDate)
    ├── NotFound                  an id that does not exist: exit 2, HTTP 404
    ├── Conflict                  the request contradicts persisted state: exit 2, HTTP 409
    │   ├── DestructivePlan       a plan would remove published items; not allowed
    │   ├── StalePlan *           a saved plan's cells changed since (ingestion.planner)
    │   ├── IllegalTransition *   a status move the table forbids (ingestion.transitions)
    │   └── LeaseLost *           a write under an epoch that is no longer current (same)
    ├── Interrupted               a foreground job stopped by Ctrl-C: exit 130
    ├── CancelRequested *         a step stops at a day boundary (ingestion.steps; internal)
    ├── OperationFailed           the operation ran and found a failure: exit 1, HTTP 500
    │   ├── BadRecord             a source record that cannot be read (file, line)
    │   ├── StageFailed           a stage could not complete a (source, day)
    │   │   └── UnreadableRecords  an export day holds source records it cannot read
    │   ├── StepFailed *          a job step failed (ingestion.steps)
    │   ├── JobNotEnded *         a job's end could not be written (ingestion.runtime)
    │   └── DriftFound *          the reconcile report found drift (report)
    └── EnvironmentFault          the machine, not the request: exit 3, HTTP 503
        ├── SchedulerUnreachable *  the Dask scheduler does not answer (ingestion.dask_executor)
        ├── StorageFault          a file cannot be written: full disk, read-only, no permission
        │   ├── ReadOnlyStorage   a home (or folder) on a read-only file system
        │   └── ArtifactStoreFault *  artifacts' bucket missing or unreachable (memory.artifacts)
        └── DatabaseFault         the database is unreachable, locked, full or read-only
            ├── DatabaseUnavailable *  the same, raised by the engine (faults)
            └── IndexUnavailable *  the team index's server, the same (memory.pg_index)

Facts travel as attributes so each face can render them its own way.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
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
        super().__init__(f"unknown source {echo(name)}{hint}")


class UnknownExecutor(UserError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown executor {echo(name)}; executors: {', '.join(known)}")


class BadDate(UserError):
    """A date or day range that does not parse or is reversed."""


class FieldError(UserError):
    """Bad input about named fields. The message is a template with one `{}` per field, so
    each face can name the fields its own way (a JSON key, a --flag); `str()` uses the
    field names themselves."""

    def __init__(self, template: str, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self._template = template
        super().__init__(template.format(*fields))

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with every field named by `name` (e.g. `lambda f: "--" + f`)."""
        return self._template.format(*map(name, self.fields))


class OutOfRange(FieldError):
    """A number outside the range `softcopy.limits` allows for its field."""

    def __init__(self, field: str, value: object, minimum: int, maximum: int) -> None:
        self.field = field
        self.value = value
        self.minimum = minimum
        self.maximum = maximum
        super().__init__(
            f"{{}}: {echo(value)} is out of range; allowed: {minimum}..{maximum}", (field,)
        )


class MissingFields(FieldError):
    """A request lacks fields it needs (`what` says which request)."""

    def __init__(self, what: str, fields: tuple[str, ...]) -> None:
        self.what = what
        super().__init__(f"{what} needs " + " and ".join("{}" for _ in fields), fields)


class ReversedRange(FieldError, BadDate):
    """A day range whose end is before its start."""

    def __init__(
        self, start: date, end: date, fields: tuple[str, str] = ("range_start_day", "range_end_day")
    ) -> None:
        self.start = start
        self.end = end
        super().__init__(f"{{1}} {end} is before {{0}} {start}", fields)

    @classmethod
    def check(
        cls,
        start: date | None,
        end: date | None,
        fields: tuple[str, str] = ("range_start_day", "range_end_day"),
    ) -> None:
        """Raise when both ends are given and the end is before the start."""
        if start and end and end < start:
            raise cls(start, end, fields)


ECHO_CHARS = 80


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A value as a message may echo it: its repr, cut to `limit` characters."""
    text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


class SourceExists(UserError):
    """A source of that name already reads another path (or is another kind): re-pointing
    it must be asked for, since the published days of the old path would go stale."""

    def __init__(self, name: str, old: str, new: str) -> None:
        self.name = name
        self.old = old
        self.new = new
        super().__init__(
            f"source {name!r} already reads {old}; re-pointing it at {new} must be asked for "
            "explicitly (its published days would be removed by the next plans)"
        )


class NotFound(SoftcopyError):
    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class NoSources(UserError):
    """The home has no sources configured: there is nothing to cover, plan or run."""

    def __init__(self, home: object, chosen_by: str) -> None:
        self.home = home
        self.chosen_by = chosen_by  # "--home", "SOFTCOPY_HOME" or "the default"
        super().__init__(f"home {home} ({chosen_by}) has no sources")


class Interrupted(SoftcopyError):
    """A job run in the foreground was stopped from the terminal (Ctrl-C); it was left
    cancelled with its checkpoints, so it can be resumed."""

    def __init__(self, job_id: int, cells_done: int, cells_total: int) -> None:
        self.job_id = job_id
        self.cells_done = cells_done
        self.cells_total = cells_total
        super().__init__(f"job {job_id} cancelled at {cells_done}/{cells_total} cells")


class Conflict(SoftcopyError):
    """The request contradicts persisted state (held cells, stale plans, illegal moves)."""


class DestructivePlan(Conflict):
    """A plan would remove published items: empty a day that had items, or drop items of
    days outside the window it was asked to re-check. Refused unless shrinking is allowed.

    `source` is the first source it would shrink, `days` its shrunk days, `published` and
    `remaining` their item counts before and after; `removals` holds every shrunk
    (source, day, published, remaining), of every source."""

    def __init__(self, removals: list[tuple[str, date, int, int]]) -> None:
        assert removals, "a destructive plan removes something"
        self.removals = sorted(removals)
        self.source = self.removals[0][0]
        mine = [r for r in self.removals if r[0] == self.source]
        self.days = [day for _, day, _, _ in mine]
        self.published = sum(p for _, _, p, _ in mine)
        self.remaining = sum(r for _, _, _, r in mine)
        self.removed = self.published - self.remaining
        self.sources = sorted({r[0] for r in self.removals})
        shown = ", ".join(f"{day} ({p} → {r})" for _, day, p, r in mine[:3])
        more = f", … {len(mine) - 3} more days" if len(mine) > 3 else ""
        span = f" from {self.days[0]} to {self.days[-1]}" if len(mine) > 3 else ""
        others = len(self.sources) - 1
        also = f"; and {others} more source(s): {', '.join(self.sources[1:])}" if others else ""
        super().__init__(
            f"the plan would remove {self.removed} of {self.published} published items of "
            f"source {self.source!r} on {len(mine)} day(s){span}: {shown}{more}{also}; "
            "refused unless removing published items is allowed"
        )


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


class UnreadableRecords(StageFailed):
    """An export day holds records that cannot be read (each `file:line: reason`); a plan
    that skips bad records would skip and count them."""

    def __init__(self, source: str, day: date, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__("export", source, day, f"{problems[0]}{more}")


class EnvironmentFault(SoftcopyError):
    """The machine is at fault, not the request: the same operation can succeed once the
    disk has room, the home is writable or the database answers again."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


# errno values that mean "the machine", worded for one line; anything else is a bug
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


class StorageFault(EnvironmentFault):
    """A file or folder cannot be written (or read) for a reason of the machine."""

    def __init__(
        self, path: Path | str, reason: str, *, code: int | None = None, what: str | None = None
    ) -> None:
        self.path = str(path)
        self.code = code  # the errno, when an OSError said it
        super().__init__(what or f"cannot write {self.path}", reason)

    @classmethod
    def from_os_error(cls, error: OSError, path: Path | str | None = None) -> StorageFault | None:
        """The fault an OSError stands for, or None when it is not one of the machine's."""
        if error.errno not in STORAGE_ERRNOS:
            return None
        where = Path(path if path is not None else (error.filename or "."))
        if error.errno == errno.EROFS:
            return ReadOnlyStorage(where.parent, f"write {where}")
        return cls(where, STORAGE_ERRNOS[error.errno], code=error.errno)


class ReadOnlyStorage(StorageFault):
    """A home or folder on a read-only file system: reads work, writes cannot."""

    def __init__(self, folder: Path | str, action: str, *, label: str = "folder") -> None:
        self.action = action
        super().__init__(
            folder, f"cannot {action}", code=errno.EROFS, what=f"{label} {folder} is read-only"
        )


class DatabaseFault(EnvironmentFault):
    """The database cannot be reached, is locked past its busy timeout, or cannot take
    writes (a full disk, a read-only file). `database` never shows a password."""

    def __init__(self, database: str | None, reason: str) -> None:
        self.database = database
        super().__init__(f"database {database}" if database else "database", reason)
