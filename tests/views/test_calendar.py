"""The coverage calendar: one SVG string with a rectangle per cell and its facts in the
tooltip, year bands for long ranges, ten years drawn well inside a second; the grid and
text picture behind it; the figure notebooks display; real and persisted coverage."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from softcopy.errors import BadDate
from softcopy.ingestion import service
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.models import CoverageCell
from softcopy.ingestion.states import CellState, Stage
from softcopy.views.calendar import (
    STATE_COLOURS,
    calendar_figure,
    calendar_grid,
    calendar_text,
    heatmap_svg,
    last_job,
    layout,
    legend_html,
)

START = D1 = date(2026, 3, 1)
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class LedgerCell(Cell):
    done_by: str | None = None  # what coverage adds when it reports the ledger's writer


def cell(day: date, stage: Stage = Stage.export, state: CellState = CellState.current, **kw):
    return Cell("notes", day, stage, state, "e" * 64, "r" * 64, 3, **kw)


def test_one_band_for_a_short_range_and_a_band_per_year_for_a_long_one() -> None:
    short = layout(START, START + timedelta(days=119), ["chat", "notes"])
    assert len(short.bands) == 1 and len(short.rows) == 6 and short.cell_w == 7
    long = layout(date(2016, 6, 1), date(2026, 3, 31), ["notes"])
    assert [first.year for first, _, _ in long.bands] == list(range(2016, 2027))
    assert long.bands[0][2] == date(2016, 6, 1).timetuple().tm_yday - 1  # days line up by date


def test_each_cell_is_a_rect_with_state_colour_digests_and_job_in_its_tooltip() -> None:
    cells = [
        cell(START),
        cell(START + timedelta(days=1), state=CellState.running, job_id=7),
        LedgerCell("notes", START, Stage.embed, CellState.stale, "e" * 64, None, 2, None, "job:42"),
        cell(START + timedelta(days=40)),  # outside the range: not drawn
        Cell("other", START, Stage.export, CellState.missing, None, None, 1),  # not shown
    ]
    svg = heatmap_svg(cells, start=START, end=START + timedelta(days=9), sources=["notes"])
    titles = re.findall(r"<title>(.*?)</title>", svg, re.S)
    assert len(titles) == 3
    assert titles[0].splitlines() == [
        "notes · export · 2026-03-01",
        "current · 3 items",
        f"input digest {'r' * 12} (expected {'e' * 12})",
    ]
    assert titles[1].splitlines()[-1] == "running in job 7"
    assert titles[2].splitlines()[-2:] == [
        f"input digest none (expected {'e' * 12})",
        "last job 42",
    ]
    assert f'fill="{STATE_COLOURS[CellState.running]}"' in svg
    assert svg.count("notes · publish</text>") == 1  # one row label per source x stage


def test_last_job_names_other_writers_plainly() -> None:
    assert last_job(cell(START)) == ""
    done = LedgerCell("n", START, Stage.export, CellState.current, None, None, 0, None, "cli:x")
    assert last_job(done) == "last written by cli:x"


def test_legend_shows_every_state_with_its_total() -> None:
    legend = legend_html({"current": 1200, "missing": 3})
    for state in CellState:
        assert f"{state} <b>" in legend
    assert "current <b>1,200</b>" in legend and "no data" in legend


def test_ten_years_of_days_draw_every_cell() -> None:
    # how fast is bench/dashboard_paint.py's to say (wall-clock limits live in bench/)
    end = date(2026, 3, 31)
    start = end - timedelta(days=3652)
    rng = random.Random(1)
    states = list(CellState)
    cells = [
        Cell(source, start + timedelta(days=i), stage, rng.choice(states), "a" * 64, "b" * 64, 4)
        for source in ("chat", "mail", "notes")
        for i in range(3653)
        for stage in Stage
    ]
    svg = heatmap_svg(cells, start=start, end=end, sources=["chat", "mail", "notes"])
    assert svg.count("<title>") == len(cells) == 32_877


def source_cell(source: str, day: date, stage: Stage, state: CellState, items: int = 1) -> Cell:
    return Cell(source, day, stage, state, None, None, items)


def rects(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}rect"))


def test_grid_has_a_row_per_source_and_stage_and_a_column_per_day() -> None:
    cells = [
        source_cell("notes", D1, Stage.export, CellState.current, 3),
        source_cell("notes", D1 + timedelta(days=2), Stage.publish, CellState.stale),
        source_cell("chat", D1 + timedelta(days=1), Stage.embed, CellState.failed),
    ]
    grid = calendar_grid(cells)
    assert (grid.start, grid.end) == (D1, D1 + timedelta(days=2))
    assert [(r.source, r.stage) for r in grid.rows] == [
        (s, stage) for s in ("chat", "notes") for stage in Stage
    ]
    notes = {r.stage: r for r in grid.rows if r.source == "notes"}
    assert notes[Stage.export].states == [CellState.current, None, None]
    assert notes[Stage.export].items == [3, 0, 0]
    assert notes[Stage.publish].states == [None, None, CellState.stale]
    assert grid.counts()[CellState.failed] == 1


def test_grid_keeps_the_range_and_the_sources_asked_for() -> None:
    cells = [
        source_cell("notes", D1, Stage.export, CellState.current),
        source_cell("notes", D1 + timedelta(days=40), Stage.export, CellState.current),
    ]
    grid = calendar_grid(
        cells, start=D1 - timedelta(days=1), end=D1 + timedelta(days=5), sources=["mail", "notes"]
    )
    assert len(grid.days) == 7
    assert [r.source for r in grid.rows] == ["mail"] * 3 + ["notes"] * 3
    assert grid.rows[0].states == [None] * 7  # a source with no cells keeps its rows
    assert grid.counts()[CellState.current] == 1  # the day past the range is left out


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(BadDate):
        calendar_grid([], start=D1, end=D1 - timedelta(days=1))
    with pytest.raises(BadDate):
        calendar_figure([], D1, D1 - timedelta(days=1))


def test_no_cells_still_draws_every_row_of_the_range() -> None:
    figure = calendar_figure([], D1, D1 + timedelta(days=3), sources=["notes"])
    background = [r for r in rects(figure.svg) if r.find(f"{SVG}title") is None]
    assert len(background) == 3  # one no-data row per stage
    # the label padded to the widest ("notes publish"), two spaces, then four blank days
    assert figure.text.splitlines()[1] == "notes export " + "  " + " " * 4


def test_the_figure_colours_each_day_and_says_what_it_is_on_hover() -> None:
    cells = [
        source_cell("notes", D1, Stage.export, CellState.current, 4),
        source_cell("notes", D1 + timedelta(days=1), Stage.export, CellState.missing, 2),
    ]
    svg = calendar_figure(cells, sources=["notes"]).svg
    day_rects = [r for r in rects(svg) if r.find(f"{SVG}title") is not None]
    titles = {
        tuple(r.find(f"{SVG}title").text.splitlines()[:2]): r.get("fill")  # type: ignore[union-attr]
        for r in day_rects
    }
    assert (
        titles[("notes · export · 2026-03-01", "current · 4 items")]
        == STATE_COLOURS[CellState.current]
    )
    assert (
        titles[("notes · export · 2026-03-02", "missing · 2 items")]
        == STATE_COLOURS[CellState.missing]
    )
    assert len(day_rects) == 2  # one per cell


def test_marked_cells_are_outlined() -> None:
    cells = [source_cell("notes", D1, Stage.export, CellState.stale)]
    marks = [("notes", D1, Stage.export), ("mail", D1, Stage.export)]
    outlined = [
        r for r in rects(calendar_figure(cells, marked=marks).svg) if r.get("fill") == "none"
    ]
    assert len(outlined) == 1  # a mark on a row that is not drawn is ignored
    long = heatmap_svg(
        cells, start=date(2020, 1, 1), end=D1, sources=["notes"], marked=[("notes", D1, "export")]
    )
    (mark,) = [r for r in rects(long) if r.get("fill") == "none"]  # in the last year's band
    assert int(mark.get("y", "0")) >= 6 * layout(date(2020, 1, 1), D1, ["notes"]).band_height


def test_text_picture_has_a_character_per_day() -> None:
    cells = [
        source_cell("notes", D1, Stage.export, CellState.current),
        source_cell("notes", D1 + timedelta(days=2), Stage.export, CellState.stale),
    ]
    lines = calendar_text(calendar_grid(cells)).splitlines()
    assert lines[1] == "notes export   # s"
    assert lines[0].endswith("2026-03-01 … 2026-03-03")


def test_figure_displays_as_html_with_its_legend_and_prints_as_text() -> None:
    figure = calendar_figure([source_cell("notes", D1, Stage.embed, CellState.running)])
    shown = figure._repr_html_()
    assert shown.startswith("<div") and "<svg" in shown and "running <b>1</b>" in shown
    assert "notes embed" in repr(figure)


def test_persisted_cells_draw_the_same_picture() -> None:
    fresh = source_cell("notes", D1, Stage.publish, CellState.failed, 2)
    row = CoverageCell(
        snapshot_id=1, source="notes", day=D1, stage=Stage.publish, state=CellState.failed, items=2
    )
    assert calendar_figure([row]).svg == calendar_figure([fresh]).svg


def test_draws_real_coverage(ctx: service.Context) -> None:
    report = service.coverage(ctx)
    figure = calendar_figure(report.cells, sources=report.snapshot.sources)
    grid = calendar_grid(report.cells)
    assert sum(grid.counts().values()) == len(report.cells)
    assert figure.svg.count("<title>") == len(report.cells)
