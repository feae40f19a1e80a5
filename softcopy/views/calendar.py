"""The coverage calendar, the one picture of coverage: one row per (source, stage), one cell
per day, coloured by state. The dashboard's coverage panel and the report notebooks
(reconcile, tour) draw it.

One SVG string (one `ipywidgets.HTML`, not a widget per cell, so ten years draw in well
under a second): every day keeps its own rectangle whose tooltip names its state, item
count, digests and the job that holds or last touched it; ranges longer than `BAND_DAYS`
wrap into one band per year. `calendar_text` draws the same grid in characters for logs
and terminals; `calendar_figure` is both, for a notebook to display.

Cells are `coverage.Cell` values or persisted `CoverageCell` rows (anything `CellLike`).
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
MARK_COLOUR = "#24292f"

Mark = tuple[str, date, Stage]  # (source, day, stage) to outline, e.g. a reconcile finding


class CellLike(Protocol):
    """What the calendar reads of a coverage cell."""

    source: str
    day: date
    stage: Stage
    state: CellState
    items: int
    expected_digest: str | None
    recorded_digest: str | None
    job_id: int | None
    done_by: str | None


LABEL_WIDTH = 118
TARGET_WIDTH = 900  # the days area of a single band aims at this many pixels
BAND_DAYS = 400  # longer ranges wrap into one band per calendar year
YEAR_CELL = 3  # pixels per day when wrapped by year


@dataclass(frozen=True)
class Layout:
    start: date
    end: date
    rows: list[tuple[str, Stage]]
    bands: list[tuple[date, date, int]]  # (first day, last day, column of the first day)
    cell_w: int
    cell_h: int
    gap: int
    header: int

    @property
    def band_height(self) -> int:
        return self.header + self.cell_h * len(self.rows) + 6

    @property
    def width(self) -> int:
        columns = max(col + (last - first).days + 1 for first, last, col in self.bands)
        return LABEL_WIDTH + columns * self.cell_w + 4

    @property
    def height(self) -> int:
        return self.band_height * len(self.bands)


def layout(start: date, end: date, sources: Sequence[str]) -> Layout:
    """Where everything goes for the days [start, end] and these sources."""
    if end < start:
        raise BadDate(f"calendar end {end} is before its start {start}")
    rows = [(source, stage) for source in sources for stage in Stage]
    days = (end - start).days + 1
    if days <= BAND_DAYS:
        cell_w = max(2, min(16, TARGET_WIDTH // days))
        return Layout(start, end, rows, [(start, end, 0)], cell_w, 14, int(cell_w >= 5), 18)
    bands = []
    for year in range(start.year, end.year + 1):
        first = max(start, date(year, 1, 1))
        last = min(end, date(year, 12, 31))
        bands.append((first, last, first.timetuple().tm_yday - 1))
    return Layout(start, end, rows, bands, YEAR_CELL, 9, 0, 16)


def heatmap_svg(
    cells: Iterable[CellLike],
    *,
    start: date,
    end: date,
    sources: Sequence[str],
    marked: Iterable[Mark] = (),
) -> str:
    """The calendar for the cells of `sources` in [start, end] (other cells are ignored),
    with the `marked` cells outlined."""
    lay = layout(start, end, sources)
    row_of = {key: r for r, key in enumerate(lay.rows)}
    band_of_year = {first.year: b for b, (first, _, _) in enumerate(lay.bands)}
    single = len(lay.bands) == 1
    parts = [
        f'<svg class="sc-heatmap" xmlns="http://www.w3.org/2000/svg" width="{lay.width}" '
        f'height="{lay.height}" viewBox="0 0 {lay.width} {lay.height}" '
        f'font-family="sans-serif" font-size="10">'
    ]
    for b, band in enumerate(lay.bands):
        parts += _band_frame(lay, b, band, single)
    cw, ch, gap = lay.cell_w, lay.cell_h, lay.gap
    labels = [html.escape(f"{source} · {stage.value}") for source, stage in lay.rows]
    fills = {state: STATE_COLOURS[state] for state in CellState}
    for cell in cells:
        r = row_of.get((cell.source, cell.stage))
        if r is None or not start <= cell.day <= end:
            continue
        b = 0 if single else band_of_year[cell.day.year]
        first, _, col0 = lay.bands[b]
        x = LABEL_WIDTH + (col0 + (cell.day - first).days) * cw
        y = b * lay.band_height + lay.header + r * ch
        job = last_job(cell)
        job_line = f"\n{job}" if job else ""
        # hot loop (tens of thousands of cells): plain values, nothing re-escaped per cell
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cw - gap}" height="{ch - 1}" '
            f'fill="{fills[cell.state]}"><title>{labels[r]} · {cell.day.isoformat()}\n'
            f"{cell.state} · {cell.items} items\n"
            f"input digest {_short(cell.recorded_digest)} "
            f"(expected {_short(cell.expected_digest)}){job_line}"
            "</title></rect>"
        )
    parts += _marks(lay, marked)
    parts.append("</svg>")
    return "".join(parts)


def _marks(lay: Layout, marked: Iterable[Mark]) -> list[str]:
    row_of = {key: r for r, key in enumerate(lay.rows)}
    parts = []
    for source, day, stage in sorted(set(marked)):
        r = row_of.get((source, Stage(stage)))
        if r is None or not lay.start <= day <= lay.end:
            continue  # a mark on a row or day that is not drawn
        b = next(b for b, (first, last, _) in enumerate(lay.bands) if first <= day <= last)
        first, _, col0 = lay.bands[b]
        x = LABEL_WIDTH + (col0 + (day - first).days) * lay.cell_w
        y = b * lay.band_height + lay.header + r * lay.cell_h
        what = html.escape(f"{source} · {stage} · {day}: flagged")
        parts.append(
            f'<rect x="{x}" y="{y}" width="{max(lay.cell_w, 3)}" height="{lay.cell_h}" '
            f'fill="none" stroke="{MARK_COLOUR}" stroke-width="2"><title>{what}</title></rect>'
        )
    return parts


def legend_html(totals: dict[str, int]) -> str:
    """Colour keys with the snapshot's count per state, and the colour of a day without data."""
    chips = [
        f'<span class="sc-chip"><i style="background:{STATE_COLOURS[s]}"></i>'
        f"{s} <b>{totals.get(str(s), 0):,}</b></span>"
        for s in CellState
    ]
    chips.append(f'<span class="sc-chip"><i style="background:{NO_DATA_COLOUR}"></i>no data</span>')
    return f'<div class="sc-legend">{"".join(chips)}</div>'


def last_job(cell: CellLike) -> str:
    """The job that holds the cell now, else the one that last wrote it (when known)."""
    if cell.job_id is not None:
        return f"running in job {cell.job_id}"
    done_by = cell.done_by
    if not done_by:
        return ""
    if done_by.startswith("job:"):
        return f"last job {done_by[4:]}"
    return f"last written by {done_by}"


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def _band_frame(lay: Layout, b: int, band: tuple[date, date, int], single: bool) -> list[str]:
    """A band's axis labels, row labels and the no-data background of each row."""
    first, last, col0 = band
    top = b * lay.band_height
    x0 = LABEL_WIDTH + col0 * lay.cell_w
    span = ((last - first).days + 1) * lay.cell_w
    parts = []
    if not single:
        parts.append(f'<text x="4" y="{top + 11}" font-weight="bold">{first.year}</text>')
    starts = _month_starts(first, last)
    for n, day in enumerate(starts):
        x = LABEL_WIDTH + (col0 + (day - first).days) * lay.cell_w
        room = ((starts[n + 1] if n + 1 < len(starts) else last) - day).days * lay.cell_w
        if room >= 28 or n + 1 == len(starts):  # a sliver of a month goes unnamed
            label = f"{day:%b %Y}" if single and (day == first or day.month == 1) else f"{day:%b}"
            parts.append(f'<text x="{x}" y="{top + lay.header - 5}">{label}</text>')
        parts.append(
            f'<line x1="{x}" y1="{top + lay.header - 3}" x2="{x}" '
            f'y2="{top + lay.header}" stroke="#57606a"/>'
        )
    for r, (source, stage) in enumerate(lay.rows):
        y = top + lay.header + r * lay.cell_h
        parts.append(
            f'<text x="4" y="{y + lay.cell_h - 2}">{html.escape(source)} · {stage}</text>'
            f'<rect x="{x0}" y="{y}" width="{span}" height="{lay.cell_h - 1}" '
            f'fill="{NO_DATA_COLOUR}"/>'
        )
    return parts


def _month_starts(first: date, last: date) -> list[date]:
    """The band's first day, then the first of every later month in it."""
    days = [first]
    day = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    while day <= last:
        days.append(day)
        day = (day + timedelta(days=32)).replace(day=1)
    return days


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


def calendar_text(grid: CalendarGrid) -> str:
    """The calendar in characters, for logs and terminals: one character per day."""
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
    legend: str  # HTML: each state's colour and count
    text: str

    def html(self) -> str:
        """The legend and the SVG in a horizontally scrolling box, for a notebook or an
        ipywidgets.HTML."""
        return f'<div style="overflow-x:auto;max-width:100%">{self.legend}{self.svg}</div>'

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
    """The picture to `display()`: `calendar_figure(report.cells, start, end)`. Without a
    range, the days the cells span; without `sources`, the sources that have cells."""
    cells = list(cells)
    grid = calendar_grid(cells, start=start, end=end, sources=sources)
    names = list(dict.fromkeys(row.source for row in grid.rows))
    totals = {str(state): count for state, count in grid.counts().items()}
    return CalendarFigure(
        svg=heatmap_svg(cells, start=grid.start, end=grid.end, sources=names, marked=marked),
        legend=legend_html(totals),
        text=calendar_text(grid),
    )


# The interactive heatmap (softcopy.dashboard.heatmap draws it in the browser): each cell
# drawn is a bucket of days (a day, a week or a month) of one row, coded by one character;
# a source's row takes the worst code of its stages. Worst first:
SHOWN_STATES: dict[str, tuple[str, str]] = {  # code: (what it is called, colour)
    "f": ("failed", STATE_COLOURS[CellState.failed]),
    "l": ("artifact missing", "#8250df"),  # done on record, but its artifact file is gone
    "s": ("stale", STATE_COLOURS[CellState.stale]),
    "m": ("missing", STATE_COLOURS[CellState.missing]),
    "r": ("running now", STATE_COLOURS[CellState.running]),
    "h": ("held by a queued or running job", "#9ecbff"),
    "c": ("current", STATE_COLOURS[CellState.current]),
    "e": ("empty", STATE_COLOURS[CellState.empty]),
}
PROBLEM_CODES = frozenset("flsm")
NO_DATA = " "
_RANK = {code: n for n, code in enumerate(SHOWN_STATES)}
_CODE_OF_STATE = {
    CellState.failed: "f",
    CellState.stale: "s",
    CellState.missing: "m",
    CellState.running: "h",  # held; "running now" only when its step runs (`live`)
    CellState.current: "c",
    CellState.empty: "e",
}
UNITS = ("day", "week", "month")
DAY_LIMIT = 400  # `auto` draws days up to this many, weeks up to WEEK_LIMIT, months beyond
WEEK_LIMIT = 3 * 366


def choose_unit(start: date, end: date, unit: str = "auto") -> str:
    """What one drawn cell spans: days up to ~a year, weeks up to three, then months."""
    if unit != "auto":
        return unit
    days = (end - start).days + 1
    return "day" if days <= DAY_LIMIT else "week" if days <= WEEK_LIMIT else "month"


def buckets(start: date, end: date, unit: str) -> list[tuple[date, date]]:
    """The (first, last) day of each drawn column: days, ISO weeks or calendar months,
    clipped to [start, end]."""
    out = []
    first = start
    while first <= end:
        if unit == "day":
            last = first
        elif unit == "week":
            last = first + timedelta(days=6 - first.weekday())
        else:
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        last = min(last, end)
        out.append((first, last))
        first = last + timedelta(days=1)
    return out


def cell_code(cell: CellLike, live: object = None) -> str:
    """The code of one cell. `live` (a `service.LiveCell`, read from a running job's rows)
    turns a held cell current when its checkpoint landed, running when its step runs."""
    if live is not None:
        if getattr(live, "landed", False):
            return "c"
        return "r" if str(getattr(live, "step_status", "")) == "running" else "h"
    if getattr(cell, "artifact_missing", False):  # recorded done, but its file is gone
        return "l"
    return _CODE_OF_STATE[CellState(cell.state)]


def heatmap_data(
    cells: Iterable[CellLike],
    *,
    start: date,
    end: date,
    sources: Sequence[str],
    unit: str = "auto",
    marked: Iterable[Mark] = (),
    bad_days: Iterable[tuple[str, date]] = (),
    live: dict | None = None,  # type: ignore[type-arg]
) -> dict:  # type: ignore[type-arg]
    """What the interactive heatmap draws: columns (buckets of days), one row per source (its
    worst stage) followed by a row per stage, each a string of codes, per-column counts
    (for the tooltip), the cells to outline (`marked`: reconcile findings; `bad_days`:
    days with records a source could not read). `live` maps (source, day, stage) to what a
    live job's rows say of the cell; held cells without a snapshot row are drawn too."""
    if end < start:
        raise BadDate(f"calendar end {end} is before its start {start}")
    unit = choose_unit(start, end, unit)
    cols = buckets(start, end, unit)
    n_days = (end - start).days + 1
    col_of_day = [0] * n_days
    for c, (first, last) in enumerate(cols):
        for i in range((first - start).days, (last - start).days + 1):
            col_of_day[i] = c
    keys = [(source, None) for source in sources]
    rows: dict[tuple[str, Stage | None], list[dict[str, int]]] = {}
    for source in sources:
        rows[(source, None)] = [{} for _ in cols]
        for stage in Stage:
            rows[(source, stage)] = [{} for _ in cols]
    live = dict(live or {})

    col_at = {start + timedelta(days=i): col_of_day[i] for i in range(n_days)}
    plain = {state: _CODE_OF_STATE[state] for state in CellState}

    def add(source: str, day: date, stage: Stage, code: str) -> None:
        c = col_at[day]
        for key in ((source, stage), (source, None)):
            counts = rows[key][c]
            counts[code] = counts.get(code, 0) + 1

    names = set(sources)
    for cell in cells:  # the hot loop (tens of thousands of cells): lookups only
        c = col_at.get(cell.day)
        if c is None or cell.source not in names:
            continue
        key = (cell.source, cell.day, cell.stage)
        if live and key in live:
            code = cell_code(cell, live.pop(key))
        elif getattr(cell, "artifact_missing", False):
            code = "l"
        else:
            code = plain[cell.state]
        for counts in (rows[(cell.source, cell.stage)][c], rows[(cell.source, None)][c]):
            counts[code] = counts.get(code, 0) + 1
    for (source, day, stage), held in live.items():  # held, but not in the snapshot yet
        if source in names and start <= day <= end:
            add(source, day, Stage(stage), cell_code(None, held))  # type: ignore[arg-type]
    out_rows = []
    for key in keys + [(s, st) for s in sources for st in Stage]:
        counts = rows[key]
        worst = "".join(min(c, key=_RANK.__getitem__) if c else NO_DATA for c in counts)
        out_rows.append(
            {
                "source": key[0],
                "stage": key[1].value if key[1] else None,
                "codes": worst,
                "counts": [
                    ",".join(f"{k}{v}" for k, v in sorted(c.items(), key=lambda kv: _RANK[kv[0]]))
                    for c in counts
                ],
            }
        )
    row_index = {(r["source"], r["stage"]): n for n, r in enumerate(out_rows)}

    def spots(found: Iterable[tuple[str, str | None, date]]) -> list[list[int]]:
        seen = set()
        for source, stage, day in found:
            r = row_index.get((source, stage))
            if r is not None and start <= day <= end:
                seen.add((r, col_of_day[(day - start).days]))
        return [list(s) for s in sorted(seen)]

    marked = list(marked)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "unit": unit,
        "columns": [[first.isoformat(), last.isoformat()] for first, last in cols],
        "rows": out_rows,
        "marks": spots(
            [(s, Stage(st).value, d) for s, d, st in marked] + [(s, None, d) for s, d, _ in marked]
        ),
        "bad": spots((s, None, d) for s, d in bad_days),
        "states": {code: list(v) for code, v in SHOWN_STATES.items()},
        "problems": sorted(PROBLEM_CODES),
    }
