"""Every number the CLI takes is bounded (softcopy.limits): a huge or out-of-range one is
one line naming the option and its range, exit 2, no traceback and no write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from softcopy import limits
from softcopy.cli.main import main

HUGE = str(10**20)
BOUNDED: list[tuple[list[str], str, limits.Bound]] = [
    (["ingestion", "show", HUGE], "JOB_ID", limits.JOB_ID),
    (["ingestion", "resume", HUGE], "JOB_ID", limits.JOB_ID),
    (["ingestion", "cancel", HUGE], "JOB_ID", limits.JOB_ID),
    (["ingestion", "logs", HUGE], "JOB_ID", limits.JOB_ID),
    (["ingestion", "verify", "--job-id", HUGE], "--job-id", limits.JOB_ID),
    (["ingestion", "worker", "--job-id", HUGE], "--job-id", limits.JOB_ID),
    (["ingestion", "run", "--plan-id", HUGE], "--plan-id", limits.PLAN_ID),
    (["ingestion", "jobs", "--limit", HUGE], "--limit", limits.LIMIT),
    (
        ["ingestion", "plan", "--mode", "catch_up_recent", "--lookback-days", HUGE],
        "--lookback-days",
        limits.LOOKBACK_DAYS,
    ),
    (
        ["ingestion", "plan", "--mode", "repair", "--reconciliation-id", HUGE],
        "--reconciliation-id",
        limits.RECONCILIATION_ID,
    ),
    (
        ["ingestion", "run", "--mode", "catch_up_recent", "--chunk-days", HUGE],
        "--chunk-days",
        limits.CHUNK_DAYS,
    ),
    (
        ["ingestion", "run", "--mode", "catch_up_recent", "--chunk-days", "0"],
        "--chunk-days",
        limits.CHUNK_DAYS,
    ),
    (["ledger", "list", "--limit", HUGE], "--limit", limits.LEDGER_ROWS),
    (["cache", "prune", "--older-than-days", HUGE], "--older-than-days", limits.UNUSED_DAYS),
    (["memory", "search", "standup", "--k", HUGE], "--k|--limit", limits.SEARCH_HITS),
    (["demo", "--days", HUGE], "--days", limits.DEMO_DAYS),
    (["serve", "--port", "70000"], "--port", limits.PORT),
]


@pytest.mark.parametrize(("argv", "name", "bound"), BOUNDED, ids=lambda v: None)
def test_a_number_out_of_range_is_one_line_and_exit_2(
    demo_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], name: str, bound
) -> None:
    before = sorted(p.name for p in demo_home.iterdir())
    code = main([*argv, "--home", str(demo_home)])
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert any(err.startswith(f"error: {n}: ") for n in name.split("|")), err  # longest alias
    assert f"allowed: {bound.minimum}..{bound.maximum}" in err
    assert sorted(p.name for p in demo_home.iterdir()) == before  # nothing written


def test_core_field_errors_name_the_cli_flags(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The core names JSON fields (range_end_day); the CLI names its own flags."""
    code = main(["ingestion", "plan", "--mode", "backfill_range", "--home", str(demo_home)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == "error: backfill_range needs --range-start-day and --range-end-day\n"


def test_every_integer_the_cli_takes_is_bounded() -> None:
    """A new integer option or argument must come with its range (softcopy.limits)."""
    import typer

    from softcopy.cli.main import app

    def params(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from params(sub, (*path, name))
        for param in getattr(command, "params", []):
            yield " ".join(path), param

    integers = [
        (where, param)
        for where, param in params(typer.main.get_command(app))
        if param.type_descriptor.annotation in (int, int | None)
    ]
    assert len(integers) >= 15
    unbounded = [
        (where, param.name)
        for where, param in integers
        if "bounded" not in getattr(param.callback, "__qualname__", "")
    ]
    assert unbounded == []
