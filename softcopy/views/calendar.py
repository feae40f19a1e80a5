"""The dashboard's coverage heatmap: one row per (source, stage), one cell per day, as one SVG
string for an `ipywidgets.HTML` (one widget, not one per cell, so ten years draw in well
under a second).

Unlike the report calendar (`softcopy.ingestion.calendar`, whose colours it shares), every
day keeps its own rectangle whose tooltip names its state, item count, digests and the job
that holds or last touched it; ranges longer than `BAND_DAYS` wrap into one band per year.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from softcopy.ingestion.calendar import NO_DATA_COLOUR, STATE_COLOURS
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.states import CellState, Stage

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
        raise ValueError(f"heatmap end {end} is before its start {start}")
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


def heatmap_svg(cells: Iterable[Cell], *, start: date, end: date, sources: Sequence[str]) -> str:
    """The heatmap for the cells of `sources` in [start, end] (other cells are ignored)."""
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
            f"{cell.state.value} · {cell.items} items\n"
            f"input digest {_short(cell.recorded_digest)} "
            f"(expected {_short(cell.expected_digest)}){job_line}"
            "</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def legend_html(totals: dict[str, int]) -> str:
    """Colour keys with the snapshot's count per state, and the colour of a day without data."""
    chips = [
        f'<span class="sc-chip"><i style="background:{STATE_COLOURS[s]}"></i>'
        f"{s} <b>{totals.get(str(s), 0):,}</b></span>"
        for s in CellState
    ]
    chips.append(f'<span class="sc-chip"><i style="background:{NO_DATA_COLOUR}"></i>no data</span>')
    return f'<div class="sc-legend">{"".join(chips)}</div>'


def last_job(cell: Cell) -> str:
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
