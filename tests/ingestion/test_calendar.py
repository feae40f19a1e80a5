"""The coverage calendar picture: the grid it draws, the SVG, the text, and real coverage."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta
from itertools import pairwise

import pytest

from softcopy.errors import BadDate
from softcopy.ingestion import service
from softcopy.ingestion.calendar import (
    STATE_COLOURS,
    calendar_figure,
    calendar_grid,
    calendar_svg,
    calendar_text,
)
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.models import CoverageCell
from softcopy.ingestion.states import CellState, Stage

SVG = "{http://www.w3.org/2000/svg}"
D1 = date(2026, 3, 1)


def cell(source: str, day: date, stage: Stage, state: CellState, items: int = 1) -> Cell:
    return Cell(source, day, stage, state, None, None, items)


def rects(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}rect"))


def test_grid_has_a_row_per_source_and_stage_and_a_column_per_day() -> None:
    cells = [
        cell("notes", D1, Stage.export, CellState.current, 3),
        cell("notes", D1 + timedelta(days=2), Stage.publish, CellState.stale),
        cell("chat", D1 + timedelta(days=1), Stage.embed, CellState.failed),
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
        cell("notes", D1, Stage.export, CellState.current),
        cell("notes", D1 + timedelta(days=40), Stage.export, CellState.current),
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


def test_no_cells_still_draws_the_range() -> None:
    figure = calendar_figure([], D1, D1 + timedelta(days=3), sources=["notes"])
    assert len(rects(figure.svg)) >= 3 * 4


def test_svg_colours_each_day_and_says_what_it_is_on_hover() -> None:
    cells = [
        cell("notes", D1, Stage.export, CellState.current, 4),
        cell("notes", D1 + timedelta(days=1), Stage.export, CellState.missing, 2),
    ]
    svg = calendar_svg(cells, sources=["notes"])
    day_rects = [r for r in rects(svg) if r.find(f"{SVG}title") is not None]
    titles = {r.find(f"{SVG}title").text: r.get("fill") for r in day_rects}  # type: ignore[union-attr]
    assert (
        titles["notes · export · 2026-03-01: current, 4 items"] == STATE_COLOURS[CellState.current]
    )
    assert (
        titles["notes · export · 2026-03-02: missing, 2 items"] == STATE_COLOURS[CellState.missing]
    )
    assert len(day_rects) == 3 * 2  # one per stage and day


def test_marked_cells_are_outlined() -> None:
    cells = [cell("notes", D1, Stage.export, CellState.stale)]
    svg = calendar_svg(cells, marked=[("notes", D1, Stage.export), ("mail", D1, Stage.export)])
    outlined = [r for r in rects(svg) if r.get("fill") == "none"]
    assert len(outlined) == 1  # a mark on a row that is not drawn is ignored


def test_long_ranges_merge_runs_of_one_state() -> None:
    start = D1 - timedelta(days=3649)  # ten years
    cells = [
        cell("notes", start + timedelta(days=i), stage, CellState.current)
        for i in range(3650)
        for stage in Stage
    ]
    svg = calendar_svg(cells)
    assert len(svg) < 40_000  # one rectangle per row, not 3650
    months = [t for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("font-weight") == "bold"]
    xs = [int(t.get("x", "0")) for t in months]
    assert len(xs) > 20  # month names thin out instead of piling up
    assert all(b - a >= 64 for a, b in pairwise(xs))


def test_text_picture_has_a_character_per_day() -> None:
    cells = [
        cell("notes", D1, Stage.export, CellState.current),
        cell("notes", D1 + timedelta(days=2), Stage.export, CellState.stale),
    ]
    lines = calendar_text(cells).splitlines()
    assert lines[1] == "notes export   # s"
    assert lines[0].endswith("2026-03-01 … 2026-03-03")


def test_figure_displays_as_html_and_prints_as_text() -> None:
    figure = calendar_figure([cell("notes", D1, Stage.embed, CellState.running)])
    assert figure._repr_html_().startswith("<div") and "<svg" in figure._repr_html_()
    assert "notes embed" in repr(figure)


def test_persisted_cells_draw_the_same_picture() -> None:
    fresh = cell("notes", D1, Stage.publish, CellState.failed, 2)
    row = CoverageCell(
        snapshot_id=1, source="notes", day=D1, stage=Stage.publish, state=CellState.failed, items=2
    )
    assert calendar_svg([row]) == calendar_svg([fresh])


def test_draws_real_coverage(ctx: service.Context) -> None:
    report = service.coverage(ctx)
    figure = calendar_figure(report.cells, sources=report.snapshot.sources)
    grid = calendar_grid(report.cells)
    assert sum(grid.counts().values()) == len(report.cells)
    assert len(ET.fromstring(figure.svg).findall(f"{SVG}text")) > len(grid.rows)
