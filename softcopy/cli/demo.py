"""`softcopy demo`: write a sample archive into a home and register its sources."""

from __future__ import annotations

from typing import Annotated

import typer

from softcopy import limits
from softcopy.cli.common import AsJson, Home, bounded, console, print_json
from softcopy.config import default_home
from softcopy.demo import build_demo


def demo(
    days: Annotated[
        int, typer.Option("--days", callback=bounded(limits.DEMO_DAYS), help="How many days back.")
    ] = 120,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Write a realistic sample archive (notes, chat, mail) and register it as sources."""
    summary = build_demo((home or default_home()).expanduser().resolve(), days=days)
    if as_json:
        print_json(summary)
        return
    console.print(
        f"demo home {summary.home}: {summary.notes} notes, {summary.messages} chat messages, "
        f"{summary.mails} mails from {summary.start} to {summary.end}"
    )
    home_arg = f" --home {summary.home}"
    console.print(
        "next: softcopy ingestion run --mode backfill_range "
        f"--range-start-day {summary.start} --range-end-day {summary.end}{home_arg}",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"then: softcopy serve{home_arg}  (the dashboard)", markup=False, soft_wrap=True)
