"""Legacy flows kept for compatibility: `ingest` (all stages in process, no jobs),
`ledger list|show` and `cache stats|prune|clear`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from softcopy import limits
from softcopy.cli.common import (
    AsJson,
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
from softcopy.db import utcnow
from softcopy.errors import NotFound
from softcopy.ingestion.states import Stage
from softcopy.memory import facade
from softcopy.memory.runner import run_stages

ledger_app = typer.Typer(help="Read the per (source, day, stage) ledger.")
cache_app = typer.Typer(help="Inspect and trim the embedding cache.")


def ingest(
    sources: Sources = None,
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    skip_bad_records: SkipBad = False,
    allow_shrink: EmptyDays = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Export, embed and publish every day of the sources, in this process (no jobs)."""
    start, end = day_range(range_start_day, range_end_day)  # type: ignore[arg-type]
    settings, engine = open_home(home)
    names = [s.name for s in settings.selected_sources(sources)]
    held, taken = held_cells(
        settings,
        engine,
        sources=names,
        stages=list(Stage),
        start=start,
        end=end,
        done_by="cli:ingest",
    )
    with progress_bar(not as_json) as progress:
        summary = run_stages(
            settings=settings,
            engine=engine,
            stages=list(Stage),
            sources=names,
            start=start,
            end=end,
            skip_bad_records=skip_bad_records,
            allow_shrink=allow_shrink,
            done_by="cli:ingest",
            progress=progress,
            held=held,
        )
    run_summary(summary, as_json=as_json, taken=taken)
    if not summary.ok:
        raise typer.Exit(1)


@ledger_app.command("list")
def ledger_list(
    sources: Sources = None,
    stage: Annotated[Stage | None, typer.Option("--stage", help="Only this stage.")] = None,
    range_start_day: RangeStart = None,
    range_end_day: RangeEnd = None,
    limit: Annotated[int, typer.Option("--limit", callback=bounded(limits.LEDGER_ROWS))] = 200,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Ledger entries, newest day last."""
    start, end = day_range(range_start_day, range_end_day)  # type: ignore[arg-type]
    settings, engine = open_home(home)
    found = facade.ledger_rows(
        settings=settings,
        engine=engine,
        sources=sources,
        stage=stage,
        start=start,
        end=end,
        limit=limit,
    )
    rows, undated = found.rows, found.undated
    if as_json:
        print_json(rows)
        return
    table = Table("source", "day", "stage", "outcome", "items", "skipped", "done by", "when")
    for row in rows:
        table.add_row(
            row.source,
            row.day.isoformat(),
            str(row.stage),
            str(row.outcome),
            str(row.items),
            str(row.skipped),
            row.done_by,
            f"{row.attempted_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)
    for name, count in undated.items():
        if count and stage in (None, Stage.export):
            console.print(f"{name}: {count} more skipped, day unknown (in no day's row)")


@ledger_app.command("show")
def ledger_show(
    source: Annotated[str, typer.Argument(help="The source.")],
    day: Annotated[str, typer.Argument(help="The day, YYYY-MM-DD.")],
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Every stage's ledger entry for one (source, day), with digests."""
    start = parse_iso_day(day, "DAY")
    settings, engine = open_home(home)
    rows = facade.ledger_day(settings=settings, engine=engine, source=source, day=start)
    if not rows:
        raise NotFound("ledger entry", f"{source} {day}")
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(
            f"[bold]{row.stage}[/] {row.outcome}  items={row.items} skipped={row.skipped}"
        )
        console.print(f"  input  {row.input_digest}\n  output {row.output_digest}")
        if row.artifact_sha:
            console.print(f"  artifact sha256 {row.artifact_sha}")
        console.print(f"  by {row.done_by} at {row.attempted_at:%Y-%m-%d %H:%M:%S}")
        if row.error:
            console.print(f"  error: {row.error}", markup=False)


@cache_app.command("stats")
def cache_stats(home: Home = None, as_json: AsJson = False) -> None:
    """Entries and bytes per embedding model."""
    _, engine = open_home(home)
    rows = facade.cache_stats(engine=engine)
    if as_json:
        print_json(rows)
        return
    table = Table("model", "entries", "bytes", "last used")
    for row in rows:
        used = f"{row.last_used:%Y-%m-%d %H:%M}" if row.last_used else "-"
        table.add_row(row.model, str(row.entries), f"{row.bytes:,}", used)
    console.print(table)


@cache_app.command("prune")
def cache_prune(
    older_than_days: Annotated[
        int,
        typer.Option(
            "--older-than-days",
            callback=bounded(limits.UNUSED_DAYS),
            help="Drop vectors unused this long.",
        ),
    ] = 30,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Drop cached vectors that no embed has used for a while."""
    _, engine = open_home(home)
    removed = facade.cache_prune(
        engine=engine, unused_since=utcnow() - timedelta(days=older_than_days)
    )
    _report_removed(removed, as_json)


@cache_app.command("clear")
def cache_clear(
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Empty the embedding cache (or one model's part of it)."""
    _, engine = open_home(home)
    removed = facade.cache_clear(engine=engine, model=model)
    _report_removed(removed, as_json)


def _report_removed(removed: int, as_json: bool) -> None:
    if as_json:
        print_json({"removed": removed})
    else:
        console.print(f"removed {removed} cached vectors")
