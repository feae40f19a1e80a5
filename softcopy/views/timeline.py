"""A job's timeline (Gantt): one row per (source, stage), one bar per step from when it
started to when it ended (to `now` while it runs), coloured by the step's status.

One SVG string, like the coverage calendar. A ten-year backfill has thousands of steps, most
narrower than a pixel: neighbouring bars of a row with the same status that would touch are
drawn as one bar whose tooltip counts them, so the picture stays a few hundred rectangles
however long the job. Steps that never started (pending) have no bar; the header says how
many. Pure: steps in, text out.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from softcopy.ingestion.states import Stage, StepStatus

STATUS_COLOURS: dict[StepStatus, str] = {
    StepStatus.succeeded: "#2da44e",
    StepStatus.running: "#0969da",
    StepStatus.failed: "#cf222e",
    StepStatus.cancelled: "#9a6700",
    StepStatus.skipped: "#8c959f",
    StepStatus.pending: "#d8dee4",
}
LABEL_WIDTH = 118
AXIS_HEIGHT = 18
ROW_HEIGHT = 14
TICKS = 5
MERGE_PX = 1.0  # bars of a row closer than this (same status) are drawn as one


class StepLike(Protocol):
    """What the timeline reads of a job step."""

    ordinal: int
    source: str
    stage: Stage
    status: StepStatus
    started_at: datetime | None
    finished_at: datetime | None
    start_day: date
    end_day: date


@dataclass
class Bar:
    """One drawn rectangle: one step, or a run of touching steps with the same status."""

    row: int
    x0: float
    x1: float
    status: StepStatus
    first: StepLike
    last: StepLike
    count: int = 1
    seconds: float = 0.0


def timeline_svg(steps: Iterable[StepLike], *, now: datetime, width: int = 900) -> str:
    """The Gantt of `steps` (any order); `width` is the whole picture's, labels included."""
    steps = list(steps)
    started = [s for s in steps if s.started_at is not None]
    pending = len(steps) - len(started)
    if not started:
        what = f"{plural(pending, 'step')}, none started yet" if steps else "no steps"
        return f'<div class="sc-timeline sc-empty">timeline: {what}</div>'
    rows = _rows(steps)
    row_of = {key: r for r, key in enumerate(rows)}
    t0 = min(_utc(s.started_at) for s in started)  # type: ignore[arg-type]
    t1 = max(_end(s, now) for s in started)
    span = max((t1 - t0).total_seconds(), 1e-3)
    area = max(width - LABEL_WIDTH - 8, 100)
    scale = area / span

    bars: list[Bar] = []
    open_bar: dict[int, Bar] = {}
    for step in sorted(started, key=lambda s: (_utc(s.started_at), s.ordinal)):  # type: ignore[arg-type]
        begin, end = _utc(step.started_at), _end(step, now)  # type: ignore[arg-type]
        r = row_of[(step.source, step.stage)]
        x0 = (begin - t0).total_seconds() * scale
        x1 = max(x0 + 1.0, (end - t0).total_seconds() * scale)  # at least a pixel
        seconds = (end - begin).total_seconds()
        last = open_bar.get(r)
        if last is not None and last.status is step.status and x0 - last.x1 < MERGE_PX:
            last.x1, last.last = max(last.x1, x1), step
            last.count += 1
            last.seconds += seconds
            continue
        bar = Bar(r, x0, x1, step.status, step, step, seconds=seconds)
        bars.append(bar)
        open_bar[r] = bar

    height = AXIS_HEIGHT + ROW_HEIGHT * len(rows) + 4
    parts = [
        f'<svg class="sc-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
        'font-size="10">'
    ]
    parts += _axis(span, scale, height)
    for r, (source, stage) in enumerate(rows):
        y = AXIS_HEIGHT + r * ROW_HEIGHT
        label = html.escape(f"{source} · {stage.value}")
        parts.append(f'<text x="0" y="{y + 10}">{label}</text>')
    for bar in bars:
        y = AXIS_HEIGHT + bar.row * ROW_HEIGHT
        parts.append(
            f'<rect class="sc-bar sc-bar-{bar.status.value}" x="{LABEL_WIDTH + bar.x0:.1f}" '
            f'y="{y + 1}" width="{bar.x1 - bar.x0:.1f}" height="{ROW_HEIGHT - 3}" '
            f'fill="{STATUS_COLOURS[bar.status]}"><title>{html.escape(_tooltip(bar))}</title>'
            "</rect>"
        )
    parts.append("</svg>")
    note = f" · {plural(pending, 'step')} not started" if pending else ""
    return (
        f'<div class="sc-timeline-box"><div class="sc-facts">timeline: '
        f"{plural(len(started), 'step')} started over {duration(span)}{note}</div>"
        f"{''.join(parts)}</div>"
    )


def plural(n: int, word: str) -> str:
    """'1 step', '2 steps', '4,208 steps'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def duration(seconds: float) -> str:
    """'0.4s', '42s', '3m 05s', '2h 07m'."""
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _rows(steps: Sequence[StepLike]) -> list[tuple[str, Stage]]:
    """(source, stage) rows: sources in the order their first step runs, stages in
    pipeline order."""
    order = {stage: i for i, stage in enumerate(Stage)}
    first_ordinal: dict[str, int] = {}
    for s in steps:
        first_ordinal[s.source] = min(first_ordinal.get(s.source, s.ordinal), s.ordinal)
    keys = {(s.source, s.stage) for s in steps}
    return sorted(keys, key=lambda k: (first_ordinal[k[0]], k[0], order[k[1]]))


def _axis(span: float, scale: float, height: int) -> list[str]:
    parts = []
    for i in range(TICKS + 1):
        seconds = span * i / TICKS
        x = LABEL_WIDTH + seconds * scale
        anchor = "end" if i == TICKS else "start"
        parts.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" y2="{height}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 6}" text-anchor="{anchor}" fill="#57606a">'
            f"{'+' if i else ''}{duration(seconds)}</text>"
        )
    return parts


def _tooltip(bar: Bar) -> str:
    first, last = bar.first, bar.last
    if bar.count == 1:
        days = _days(first.start_day, first.end_day)
        return (
            f"step {first.ordinal} · {first.stage.value} {first.source} {days}\n"
            f"{bar.status.value} · {duration(bar.seconds)}"
        )
    days = _days(min(first.start_day, last.start_day), max(first.end_day, last.end_day))
    return (
        f"{bar.count} steps ({first.ordinal} … {last.ordinal}) · {first.stage.value} "
        f"{first.source} {days}\n{bar.status.value} · {duration(bar.seconds)} in all"
    )


def _days(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first} … {last}"


def _utc(moment: datetime) -> datetime:
    """A naive datetime was written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _end(step: StepLike, now: datetime) -> datetime:
    if step.finished_at is not None:
        return _utc(step.finished_at)
    if step.status is StepStatus.running:
        return _utc(now)
    return _utc(step.started_at)  # type: ignore[arg-type]  # stopped without an end time
