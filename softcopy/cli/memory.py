"""`softcopy memory export|embed|publish|search`: the stage primitives, one stage at a time."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from softcopy import limits
from softcopy.cli.common import (
    AsJson,
    Day,
    Home,
    RangeEnd,
    RangeStart,
    SkipBad,
    Sources,
    bounded,
    console,
    day_range,
    open_home,
    print_json,
    progress_bar,
)
from softcopy.cli.render import run_summary
from softcopy.config import load_settings
from softcopy.errors import BadDate, UserError
from softcopy.ingestion.states import Stage
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
        home: Home = None,
        as_json: AsJson = False,
    ) -> None:
        start, end = day_range(range_start_day, range_end_day, day=day)  # type: ignore[arg-type]
        if start is None or end is None:
            raise BadDate("give --day, or both --range-start-day and --range-end-day")
        settings, engine = open_home(home)
        settings.source(source)
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
                done_by=f"cli:memory {stage}",
                progress=progress,
            )
        run_summary(summary, as_json=as_json)
        if not summary.ok:
            raise typer.Exit(1)

    command.__doc__ = f"Run the {stage} stage for a source over a day or a range of days."
    app.command(name=str(stage))(command)


for _stage in Stage:
    _stage_command(_stage)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[
        int, typer.Option("--k", callback=bounded(limits.SEARCH_HITS), help="How many hits.")
    ] = 10,
    sources: Sources = None,
    since: RangeStart = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Search the published memory: full-text rank fused with vector similarity."""
    if not query.strip():
        raise UserError("the search query is empty")
    settings = load_settings(home)  # search reads the index only: no database to open
    for name in sources or []:
        settings.source(name)
    hits = search_memory(settings, query=query, k=k, sources=sources or [], since=since)  # type: ignore[arg-type]
    if as_json:
        print_json(hits)
        return
    table = Table("day", "source", "title", "snippet", title=f"{len(hits)} hits for {query!r}")
    for hit in hits:
        snippet = Text(hit.snippet)
        snippet.highlight_regex(r"\[[^\]]+\]", "bold yellow")
        table.add_row(hit.day.isoformat(), hit.source, Text(hit.title), snippet)
    console.print(table)
