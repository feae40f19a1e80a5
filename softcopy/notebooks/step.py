"""What the step notebooks call inside their kernel: settings from the injected parameters,
a per-day progress line (the executor counts these lines for the worker's progress bar), and
the summary a person reads in the executed notebook afterwards.

The summary is read back from the step's persisted checkpoints, never from the kernel's
memory, so it shows days done by an earlier attempt of the step too.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import make_url

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine
from softcopy.db import hide_password as hide_password  # what the executors write down
from softcopy.errors import UserError
from softcopy.ingestion import service
from softcopy.ingestion.steps import day_done_line

HIDDEN = "***"  # how SQLAlchemy writes a hidden password


def step_settings(home: str, database_url: str, *, job_id: int, step_id: int) -> Settings:
    """The settings a step runs with: the home's, on the database the executor named.

    Executors name the database with its password hidden (`***`), as the parameters are kept
    in the executed notebook; the kernel then takes the full URL from its own settings
    (SOFTCOPY_DATABASE_URL, inherited from the worker, or softcopy.toml) if it is that one.
    """
    if not job_id or not step_id or not home:
        raise UserError(
            "this step notebook needs its parameters: run it with papermill "
            "(-p job_id … -p step_id … -p epoch … -p home …) or through a softcopy executor"
        )
    settings = load_settings(home)
    if not database_url:
        return settings
    if make_url(database_url).password != HIDDEN:
        return replace(settings, database_url=database_url)
    if hide_password(settings.database_url) != database_url:
        raise UserError(
            f"this step runs on {database_url}, but this kernel's settings name "
            f"{hide_password(settings.database_url)}: set SOFTCOPY_DATABASE_URL for it"
        )
    return settings


class DayTicker:
    """`on_day` for run_step_days inside a kernel: one line per finished day, with its time."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now
        # not flushed: the kernel sends what was printed every 0.2 s, so a step of many short
        # days makes a few output messages, not one per day
        print(day_done_line(len(self.seconds), self.seconds[-1]))


@dataclass(frozen=True)
class DayRow:
    day: date
    items: int
    skipped: int
    seconds: float | None  # None: done by an earlier attempt of the step


@dataclass(frozen=True)
class StepSummary:
    stage: str
    source: str
    days_total: int
    rows: list[DayRow]

    @property
    def items(self) -> int:
        return sum(r.items for r in self.rows)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.rows)

    @property
    def seconds(self) -> float:
        return sum(r.seconds or 0.0 for r in self.rows)

    def headline(self) -> str:
        now = sum(1 for r in self.rows if r.seconds is not None)
        earlier = f", {len(self.rows) - now} by an earlier attempt" if len(self.rows) > now else ""
        return (
            f"{self.stage} {self.source}: {len(self.rows)}/{self.days_total} days done"
            f" ({now} in this run{earlier}) · {self.items} items · {self.skipped} skipped"
            f" · {self.seconds:.2f} s"
        )

    def __repr__(self) -> str:
        lines = [self.headline(), f"{'day':<10}  {'items':>6}  {'skipped':>7}  {'seconds':>7}"]
        for r in self.rows:
            lines.append(
                f"{r.day.isoformat():<10}  {r.items:>6}  {r.skipped:>7}  {_secs(r.seconds):>7}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        widest = max((r.items for r in self.rows), default=0) or 1
        body = "".join(
            "<tr>"
            f"<td>{r.day.isoformat()}</td><td style='text-align:right'>{r.items}</td>"
            f"<td style='text-align:right'>{r.skipped}</td>"
            f"<td style='text-align:right'>{_secs(r.seconds)}</td>"
            f"<td><div style='background:#4c78a8;height:0.8em;"
            f"width:{120 * r.items // widest}px'></div></td>"
            "</tr>"
            for r in self.rows
        )
        return (
            f"<p><b>{html.escape(self.headline())}</b></p>"
            "<table><thead><tr><th>day</th><th>items</th><th>skipped</th><th>seconds</th>"
            f"<th></th></tr></thead><tbody>{body}</tbody></table>"
        )


def summary(
    settings: Settings, *, job_id: int, step_id: int, ticker: DayTicker | None = None
) -> StepSummary:
    """The step's days as its checkpoints record them; seconds for the days this run did."""
    ctx = service.Context(settings=settings, engine=get_engine(settings.database_url))
    step, checkpoints = service.step_checkpoints(ctx, job_id=job_id, step_id=step_id)
    timed = ticker.seconds if ticker else []
    this_run = checkpoints[-len(timed) :] if timed else []  # each tick follows a checkpoint
    seconds = {c.id: s for c, s in zip(this_run, timed[-len(this_run) :], strict=False)}
    rows = [DayRow(c.day, c.items, c.skipped, seconds.get(c.id)) for c in checkpoints]
    rows.sort(key=lambda r: r.day)
    return StepSummary(str(step.stage), step.source, len(step.days), rows)


def _secs(value: float | None) -> str:
    return "earlier" if value is None else f"{value:.2f}"
