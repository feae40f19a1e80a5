"""What every command shares: --home and --json, date parsing, number bounds, opening the
home, output, and how a core error's field names become this face's flags."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine
from softcopy.errors import BadDate, FieldError, ReversedRange, SoftcopyError
from softcopy.limits import Bound
from softcopy.serialize import jsonable

console = Console()
err_console = Console(stderr=True)


def parse_iso_day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadDate(f"bad date {value!r} for {what}: expected YYYY-MM-DD") from None


def flag(field: str) -> str:
    """The option a core field name stands for here: `range_end_day` → `--range-end-day`."""
    return "--" + field.replace("_", "-") if re.fullmatch(r"[a-z][a-z0-9_]*", field) else field


def describe(error: SoftcopyError) -> str:
    """A core error worded for the command line: its fields named by their flags."""
    return error.worded(flag) if isinstance(error, FieldError) else str(error)


def bounded(bound: Bound) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A callback refusing a number outside `bound` (softcopy.limits) with one line that
    names the option and the range, instead of a traceback deep in the database."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return None
        if getattr(param, "param_type_name", "") == "argument":
            name = param.metavar or str(param.name).upper()
        else:
            name = max(param.opts, key=len) if param.opts else bound.field
        return bound.check(value, field=name)

    return check


def _parse_day(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> date | None:
    if value is None:
        return None
    return parse_iso_day(value, max(param.opts, key=len) if param.opts else str(param.name))


Home = Annotated[
    Path | None,
    typer.Option(
        "--home", envvar="SOFTCOPY_HOME", help="softcopy home folder (default: user data dir)"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Day = Annotated[str | None, typer.Option("--day", callback=_parse_day, help="One day, YYYY-MM-DD.")]
RangeStart = Annotated[
    str | None,
    typer.Option("--range-start-day", callback=_parse_day, help="First day, YYYY-MM-DD."),
]
RangeEnd = Annotated[
    str | None,
    typer.Option("--range-end-day", callback=_parse_day, help="Last day, YYYY-MM-DD."),
]
Sources = Annotated[
    list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")
]
SkipBad = Annotated[
    bool,
    typer.Option("--skip-bad-records", help="Count and log unreadable records instead of failing."),
]
EmptyDays = Annotated[
    bool,
    typer.Option(
        "--allow-shrink",
        help="Let publish empty a day that has published items (its source lost them all); "
        "such a day fails otherwise.",
    ),
]


def day_range(
    start: date | None, end: date | None, *, day: date | None = None
) -> tuple[date | None, date | None]:
    """Validate --day / --range-start-day / --range-end-day into (start, end)."""
    if day is not None:
        if start or end:
            raise BadDate("give either --day or --range-start-day/--range-end-day, not both")
        return day, day
    ReversedRange.check(start, end)
    return start, end


def open_home(home: Path | None) -> tuple[Settings, Engine]:
    settings = load_settings(home)
    return settings, get_engine(settings.database_url)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on stderr, as a `progress(done, total, label)` callback."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells"),  # one unit everywhere: a cell is a source, a day and a stage
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update
