"""The `softcopy` command: assembles the Typer apps and maps errors to exit codes, once.

Exit codes: 0 success; 1 the operation ran and found a failure; 2 bad input (usage,
unknown id, conflicts with persisted state); 3 the machine is at fault (a full disk, a
read-only home, an unreachable or locked database): the same command can succeed once
that is fixed.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from softcopy import __version__
from softcopy.cli import demo, ingestion, legacy, memory, serve, sources
from softcopy.cli.common import describe
from softcopy.errors import (
    DestructivePlan,
    EnvironmentFault,
    Interrupted,
    NoSources,
    OperationFailed,
    SoftcopyError,
    SourceExists,
    UnreadableRecords,
)
from softcopy.faults import environment_fault
from softcopy.ingestion.planner import StalePlan

app = typer.Typer(
    name="softcopy",
    help="Ingest your digital memory, day by day, into a searchable index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(shown: bool) -> None:
    if shown:
        print(f"softcopy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Ingest your digital memory, day by day, into a searchable index."""


app.add_typer(ingestion.app, name="ingestion")
app.add_typer(memory.app, name="memory")
app.add_typer(sources.app, name="source")
app.add_typer(legacy.ledger_app, name="ledger")
app.add_typer(legacy.cache_app, name="cache")
app.command("ingest")(legacy.ingest)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


# What to type to do it anyway: the core's messages name no flags, the CLI adds them.
HINTS: dict[type[SoftcopyError], str] = {
    DestructivePlan: "pass --allow-shrink to do it anyway",
    SourceExists: "pass --replace to re-point it",
    StalePlan: "or pass --replan to plan again and run",
    UnreadableRecords: "--skip-bad-records skips (and counts) them",
    NoSources: "add one with `softcopy source add NAME --kind KIND --path PATH`, or write a "
    "sample archive with `softcopy demo`",
}


def hinted(error: SoftcopyError) -> str:
    hint = next((h for kind, h in HINTS.items() if isinstance(error, kind)), None)
    return f"{describe(error)}; {hint}" if hint else describe(error)


def exit_code(error: SoftcopyError) -> int:
    if isinstance(error, EnvironmentFault):
        return 3
    return 1 if isinstance(error, OperationFailed) else 2


_QUIET_POOL = logging.NullHandler()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every SoftcopyError becomes one line on stderr and an exit code.

    Click's own usage errors keep click's standard message (and exit 2).
    """
    command = typer.main.get_command(app)
    # SQLAlchemy logs, and swallows, a connection it could not reset: after a Ctrl-C that
    # interrupted a query, Python's last-resort handler printed that traceback above the one
    # line the CLI prints (a handler configured by the user still gets the record); one
    # handler however often main runs in a process (the tests run it hundreds of times)
    logging.getLogger("sqlalchemy.pool").addHandler(_QUIET_POOL)
    try:
        command.main(args=argv, prog_name="softcopy", standalone_mode=True)
    except Interrupted as stopped:  # Ctrl-C in a foreground run or resume
        # a notebook executor's abandoned cell task would report its dead kernel at exit
        logging.getLogger("asyncio").disabled = True
        print(
            f"{stopped} — resume with: softcopy ingestion resume {stopped.job_id}",
            file=sys.stderr,
        )
        return 130  # 128 + SIGINT, as shells report it
    except SoftcopyError as error:
        print(f"error: {hinted(error)}", file=sys.stderr)
        return exit_code(error)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as error:  # a driver or OS error the lower layers did not translate
        fault = environment_fault(error)
        if fault is None:
            raise  # a bug: keep the traceback
        print(f"error: {fault}", file=sys.stderr)
        return exit_code(fault)
    return 0


if __name__ == "__main__":
    sys.exit(main())
