"""`softcopy source add|list`: edit and read the sources in softcopy.toml."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from softcopy.cli.common import AsJson, Home, console, print_json
from softcopy.config import add_source, default_home, load_settings
from softcopy.db import get_engine
from softcopy.errors import UserError
from softcopy.memory import facade
from softcopy.registry import SOURCES

app = typer.Typer(help="Configure the sources softcopy reads.")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A short name, e.g. notes or mail.")],
    kind: Annotated[str, typer.Option("--kind", help=f"One of: {', '.join(SOURCES.names())}.")],
    path: Annotated[str, typer.Option("--path", help="File or folder (relative to the home).")],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Kind option as KEY=VALUE (e.g. ts_field=time)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Re-point an existing source of this name at another path or kind."
        ),
    ] = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Add a source (the same name and path again updates its options)."""
    home_path = (home or default_home()).expanduser().resolve()
    added = add_source(
        home_path,
        name=name,
        kind=kind,
        path=path,
        options=_options(option or []),
        replace=replace,
    )
    if as_json:
        print_json(added)
    else:
        console.print(f"added source [bold]{added.name}[/] ({added.kind}) at {added.path}")


@app.command("list")
def list_sources(home: Home = None, as_json: AsJson = False) -> None:
    """The configured sources with the days the last scan found."""
    settings = load_settings(home)
    engine = get_engine(settings.database_url)
    rows = [
        {
            "name": found.name,
            "kind": found.kind,
            "path": found.path,
            "options": found.options,
            "days": found.days,
            "first_day": found.first_day.isoformat() if found.first_day else None,
            "last_day": found.last_day.isoformat() if found.last_day else None,
        }
        for found in facade.source_summaries(settings=settings, engine=engine)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "kind", "path", "days scanned", "first", "last")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            row["path"],
            str(row["days"]),
            row["first_day"] or "-",
            row["last_day"] or "-",
        )
    console.print(table)


def _options(pairs: list[str]) -> dict[str, object]:
    """KEY=VALUE pairs; values are read as JSON when they parse (numbers, lists), else text."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"bad --option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
