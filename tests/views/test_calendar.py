"""The heatmap is one SVG string: a rectangle per cell with its facts in the tooltip, year
bands for long ranges, and ten years drawn well inside a second."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from datetime import date, timedelta

from softcopy.dashboard.heatmap import heatmap_svg, last_job, layout, legend_html
from softcopy.ingestion.calendar import STATE_COLOURS
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.states import CellState, Stage

START = date(2026, 3, 1)


@dataclass(frozen=True)
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


def test_ten_years_of_days_render_in_well_under_a_second() -> None:
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
    began = time.perf_counter()
    svg = heatmap_svg(cells, start=start, end=end, sources=["chat", "mail", "notes"])
    seconds = time.perf_counter() - began
    assert svg.count("<title>") == len(cells) == 32_877
    assert seconds < 1.0, f"ten years took {seconds:.2f} s to draw"
