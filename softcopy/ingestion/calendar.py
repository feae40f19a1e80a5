"""The coverage calendar: one row per (source, stage), one cell per day, coloured by state.

Pure functions from coverage cells (`coverage.Cell` or persisted `CoverageCell` rows) to a
grid, an SVG picture and a plain-text picture, so the reconcile report, the tour and the
dashboard draw the same calendar without a plotting library.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from softcopy.errors import BadDate
from softcopy.ingestion.states import CellState, Stage

STATE_COLOURS: dict[CellState, str] = {
    CellState.current: "#2da44e",
    CellState.stale: "#e3b341",
    CellState.missing: "#8c959f",
    CellState.failed: "#cf222e",
    CellState.running: "#0969da",
    CellState.empty: "#d8dee4",
}
NO_DATA_COLOUR = "#f6f8fa"  # the source never had items that day
STATE_CHARS: dict[CellState, str] = {
    CellState.current: "#",
    CellState.stale: "s",
    CellState.missing: ".",
    CellState.failed: "F",
    CellState.running: "R",
    CellState.empty: "-",
}
LABEL_WIDTH = 130
ROW_HEIGHT = 14
TARGET_WIDTH = 840  # the days area aims at this many pixels
HEADER = 26
LEGEND = 30
MONTH_LABEL = 64  # pixels a month name needs


class CellLike(Protocol):
    """What the calendar reads of a coverage cell."""

    source: str
    day: date
    stage: Stage
    state: CellState
    items: int


@dataclass(frozen=True)
class CalendarRow:
    source: str
    stage: Stage
    states: list[CellState | None]  # one per day of the grid; None: no cell that day
    items: list[int]


@dataclass(frozen=True)
class CalendarGrid:
    start: date
    end: date
    rows: list[CalendarRow]

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def counts(self) -> dict[CellState, int]:
        out = dict.fromkeys(CellState, 0)
        for row in self.rows:
            for state in row.states:
                if state is not None:
                    out[state] += 1
        return out


Mark = tuple[str, date, Stage]  # (source, day, stage) to outline, e.g. a reconcile finding


def calendar_grid(
    cells: Iterable[CellLike],
    *,
    start: date | None = None,
    end: date | None = None,
    sources: Sequence[str] | None = None,
) -> CalendarGrid:
    """The rows and columns of the picture. Without a range, the days the cells span (today,
    for no cells); without `sources`, the sources that have cells, sorted."""
    kept = [c for c in cells if (start is None or c.day >= start) and (end is None or c.day <= end)]
    days = sorted(c.day for c in kept)
    first = start or (days[0] if days else end or date.today())
    last = end or (days[-1] if days else first)
    if last < first:
        raise BadDate(f"calendar end {last} is before its start {first}")
    names = list(sources) if sources is not None else sorted({c.source for c in kept})
    width = (last - first).days + 1
    rows = {
        (name, stage): CalendarRow(name, stage, [None] * width, [0] * width)
        for name in names
        for stage in Stage
    }
    for cell in kept:
        row = rows.get((cell.source, Stage(cell.stage)))
        if row is not None:
            i = (cell.day - first).days
            row.states[i] = CellState(cell.state)
            row.items[i] = cell.items
    return CalendarGrid(start=first, end=last, rows=list(rows.values()))


def calendar_svg(
    cells: Iterable[CellLike],
    *,
    start: date | None = None,
    end: date | None = None,
    sources: Sequence[str] | None = None,
    marked: Iterable[Mark] = (),
) -> str:
    """The calendar as a standalone SVG document (hover a cell for its day, state, items)."""
    grid = calendar_grid(cells, start=start, end=end, sources=sources)
    width_days = len(grid.days)
    cell_w = max(1, min(14, TARGET_WIDTH // width_days))
    gap = 1 if cell_w >= 6 else 0
    legend = _legend_keys(grid)
    width = max(LABEL_WIDTH + cell_w * width_days + 10, sum(w for _, _, w in legend) + 8)
    height = HEADER + ROW_HEIGHT * len(grid.rows) + LEGEND
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
        f'role="img" aria-label="coverage calendar {grid.start} to {grid.end}">',
        f"<title>coverage {grid.start} … {grid.end}</title>",
    ]
    parts += _axis(grid, cell_w)
    for r, row in enumerate(grid.rows):
        y = HEADER + r * ROW_HEIGHT
        label = f"{row.source} · {row.stage}"
        parts.append(f'<text x="4" y="{y + ROW_HEIGHT - 3}">{html.escape(label)}</text>')
        for i, n, state, items in _runs(row, merge=gap == 0):
            first = grid.start + timedelta(days=i)
            when = f"{first}" if n == 1 else f"{first} … {first + timedelta(days=n - 1)}"
            what = "no data" if state is None else f"{state}, {items} items"
            colour = NO_DATA_COLOUR if state is None else STATE_COLOURS[state]
            parts.append(
                f'<rect x="{LABEL_WIDTH + i * cell_w}" y="{y + 1}" '
                f'width="{n * cell_w - gap}" height="{ROW_HEIGHT - 2}" fill="{colour}">'
                f"<title>{html.escape(f'{label} · {when}: {what}')}</title></rect>"
            )
    parts += _marks(grid, cell_w, marked)
    parts += _legend(legend, HEADER + ROW_HEIGHT * len(grid.rows) + 8)
    parts.append("</svg>")
    return "".join(parts)


def calendar_text(
    cells: Iterable[CellLike],
    *,
    start: date | None = None,
    end: date | None = None,
    sources: Sequence[str] | None = None,
) -> str:
    """The calendar in characters, for logs and terminals: one character per day."""
    grid = calendar_grid(cells, start=start, end=end, sources=sources)
    labels = [f"{row.source} {row.stage}" for row in grid.rows]
    pad = max((len(label) for label in labels), default=0)
    lines = [f"{'':{pad}}  {grid.start} … {grid.end}"]
    for label, row in zip(labels, grid.rows, strict=True):
        chars = "".join(" " if s is None else STATE_CHARS[s] for s in row.states)
        lines.append(f"{label:{pad}}  {chars}")
    key = "  ".join(f"{STATE_CHARS[s]} {s}" for s in CellState)
    lines.append(f"{'':{pad}}  {key}  (blank: no data)")
    return "\n".join(lines)


@dataclass(frozen=True)
class CalendarFigure:
    """A calendar picture that notebooks display (HTML/SVG) and logs print (text)."""

    svg: str
    text: str

    def html(self) -> str:
        """The SVG in a horizontally scrolling box, for a notebook or an ipywidgets.HTML."""
        return f'<div style="overflow-x:auto;max-width:100%">{self.svg}</div>'

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        return self.text


def calendar_figure(
    cells: Iterable[CellLike],
    start: date | None = None,
    end: date | None = None,
    *,
    sources: Sequence[str] | None = None,
    marked: Iterable[Mark] = (),
) -> CalendarFigure:
    """The picture to `display()`: `calendar_figure(report.cells, start, end)`."""
    cells = list(cells)
    return CalendarFigure(
        svg=calendar_svg(cells, start=start, end=end, sources=sources, marked=marked),
        text=calendar_text(cells, start=start, end=end, sources=sources),
    )


def _runs(row: CalendarRow, *, merge: bool) -> Iterable[tuple[int, int, CellState | None, int]]:
    """(first index, length, state, items) of each rectangle: runs of one state when the
    cells are too narrow to tell apart, else single days."""
    i = 0
    while i < len(row.states):
        j = i + 1
        while merge and j < len(row.states) and row.states[j] == row.states[i]:
            j += 1
        yield i, j - i, row.states[i], sum(row.items[i:j])
        i = j


def _axis(grid: CalendarGrid, cell_w: int) -> list[str]:
    """Month names at month starts (as many as fit, and at the grid's first day when there is
    room), day numbers on Mondays when the range is short."""
    parts = []
    short = len(grid.days) <= 62
    starts: list[int] = []
    for i, day in enumerate(grid.days):  # month starts, as many as fit side by side
        if day.day == 1 and (not starts or (i - starts[-1]) * cell_w >= MONTH_LABEL):
            starts.append(i)
    if not starts or starts[0] * cell_w >= MONTH_LABEL:
        starts.insert(0, 0)
    for i in starts:
        x = LABEL_WIDTH + i * cell_w
        parts.append(f'<text x="{x}" y="10" font-weight="bold">{grid.days[i]:%b %Y}</text>')
        parts.append(f'<line x1="{x}" y1="12" x2="{x}" y2="{HEADER}" stroke="#57606a"/>')
    for i, day in enumerate(grid.days):
        if short and day.weekday() == 0:
            x = LABEL_WIDTH + i * cell_w + 2
            parts.append(f'<text x="{x}" y="{HEADER - 3}" font-size="9">{day.day}</text>')
    return parts


def _marks(grid: CalendarGrid, cell_w: int, marked: Iterable[Mark]) -> list[str]:
    rows = {(row.source, row.stage): r for r, row in enumerate(grid.rows)}
    parts = []
    for source, day, stage in sorted(set(marked)):
        r = rows.get((source, Stage(stage)))
        if r is None or not grid.start <= day <= grid.end:
            continue
        x = LABEL_WIDTH + (day - grid.start).days * cell_w
        y = HEADER + r * ROW_HEIGHT
        parts.append(
            f'<rect x="{x}" y="{y}" width="{max(cell_w, 3)}" height="{ROW_HEIGHT}" '
            f'fill="none" stroke="#24292f" stroke-width="2">'
            f"<title>{html.escape(f'{source} · {stage} · {day}: flagged')}</title></rect>"
        )
    return parts


def _legend_keys(grid: CalendarGrid) -> list[tuple[str, str, int]]:
    """(label, colour, width in pixels) of each legend entry."""
    counts = grid.counts()
    keys = [(f"{s} {counts[s]}", STATE_COLOURS[s]) for s in CellState]
    keys.append(("no data", NO_DATA_COLOUR))
    return [(label, colour, 22 + 7 * len(label)) for label, colour in keys]


def _legend(keys: list[tuple[str, str, int]], y: int) -> list[str]:
    parts = []
    x = 4
    for label, colour, width in keys:
        parts.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}" stroke="#d0d7de"/>'
        )
        parts.append(f'<text x="{x + 14}" y="{y + 9}">{html.escape(label)}</text>')
        x += width
    return parts
