"""`softcopy memory export|embed|publish|search`: the stage primitives, one stage at a time."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from softcopy import limits
from softcopy.cli.common import (
    AsJson,
    Day,
    EmptyDays,
    Home,
    RangeEnd,
    RangeStart,
    SkipBad,
    Sources,
    bounded,
    console,
    day_range,
    open_home,
    parse_iso_day,
    print_json,
    progress_bar,
)
from softcopy.cli.render import held_cells, run_summary
from softcopy.config import load_settings
from softcopy.errors import BadDate, UserError
from softcopy.ingestion.states import Stage
from softcopy.memory.query import parse as parse_query
from softcopy.memory.runner import run_stages
from softcopy.memory.search import search as search_memory

app = typer.Typer(help="Stage primitives: export, embed, publish one (source, day) at a time.")


def _stage_command(stage: Stage) -> None:
    def command(
        source: Annotated[str, typer.Option("--source", "-s", help="The source to work on.")],
        day: Day = None,
        range_start_day: RangeStart = None,
        range_end_day: RangeEnd = None,
        skip_bad_records: SkipBad = False,
        allow_shrink: EmptyDays = False,
        home: Home = None,
        as_json: AsJson = False,
    ) -> None:
        start, end = day_range(range_start_day, range_end_day, day=day)  # type: ignore[arg-type]
        if start is None or end is None:
            raise BadDate("give --day, or both --range-start-day and --range-end-day")
        settings, engine = open_home(home)
        settings.source(source)
        held, taken = held_cells(
            settings,
            engine,
            sources=[source],
            stages=[stage],
            start=start,
            end=end,
            done_by=f"cli:memory {stage}",
        )
        with progress_bar(not as_json) as progress:
            summary = run_stages(
                settings=settings,
                engine=engine,
                stages=[stage],
                sources=[source],
                start=start,
                end=end,
                exact_days=day is not None,
                skip_bad_records=skip_bad_records,
                allow_shrink=allow_shrink,
                done_by=f"cli:memory {stage}",
                progress=progress,
                held=held,
            )
        run_summary(summary, as_json=as_json, taken=taken)
        if not summary.ok:
            raise typer.Exit(1)

    command.__doc__ = f"Run the {stage} stage for a source over a day or a range of days."
    app.command(name=str(stage))(command)


for _stage in Stage:
    _stage_command(_stage)


SEARCH_HELP = """Search the published memory: full-text rank fused with vector similarity.

A query that matches nothing, by its words or by meaning, gives no hits.

\b
Query language:
  release plan          either word; items with both rank first
  "release plan"        the exact phrase (required)
  relea*                words starting with "relea"
  -garden  -"new york"  leave out items holding the word or phrase
  source:mail           only this source (repeatable; same as --source)
  since:2026-01-01      on or after the day (same as --since)
  until:2026-01-31      on or before the day (same as --until)

\b
Examples:
  softcopy memory search "release plan" --k 5 --source mail --since 2026-01-01
  softcopy memory search '"cache expired" -garden source:chat' --explain
  softcopy memory search -- '-garden plan*'    (`--` before a query that starts with -)
"""


def _day_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> date | None:
    if value is None:
        return None
    return parse_iso_day(value, param.opts[0] if param.opts else str(param.name))


@app.command(help=SEARCH_HELP)
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in the query language below.")],
    k: Annotated[
        int,
        typer.Option(
            "--k", "--limit", callback=bounded(limits.SEARCH_HITS), help="How many hits at most."
        ),
    ] = 10,
    sources: Sources = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", "--range-start-day", callback=_day_option, help="First day, YYYY-MM-DD."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", "--range-end-day", callback=_day_option, help="Last day, YYYY-MM-DD."
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the full-text and vector parts of each score.")
    ] = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    if not query.strip():
        raise UserError("the search query is empty")
    parsed = parse_query(query)  # a malformed query is one line, before the home is opened
    settings = load_settings(home)  # search reads the index only: no database to open
    hits = search_memory(
        settings,
        query=parsed,
        k=k,
        sources=sources or [],
        since=since,  # type: ignore[arg-type]
        until=until,  # type: ignore[arg-type]
    )
    if as_json:
        print_json(hits)
        return
    if not hits:
        console.print(f"no matches for {query!r}")
        return
    columns = ["day", "source", "title"]
    columns += ["score", "text", "vector"] if explain else ["snippet"]
    table = Table(*columns, title=f"{len(hits)} hit{'s' if len(hits) != 1 else ''} for {query!r}")
    for hit in hits:
        snippet = Text(hit.snippet)
        snippet.highlight_regex(r"\[[^\]]+\]", "bold yellow")
        row: list[str | Text] = [hit.day.isoformat(), hit.source, Text(hit.title)]
        if not explain:
            row.append(snippet)
        elif hit.why is not None:
            why = hit.why
            row += [
                f"{why.fused:.4f}",
                "-" if why.lexical_rank is None else f"#{why.lexical_rank} bm25={why.bm25:.2f}",
                "-" if why.vector_rank is None else f"#{why.vector_rank} cos={why.cosine:.3f}",
            ]
        table.add_row(*row)
    console.print(table)
