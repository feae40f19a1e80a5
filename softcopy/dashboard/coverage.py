"""The coverage panel: a calendar heatmap of every (source, day, stage) cell, its legend and
totals, a range picker, and the details of one chosen day."""

from __future__ import annotations

import html
import time
from datetime import date, timedelta
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, button, guarded, html_table
from softcopy.ingestion import service
from softcopy.ingestion.coverage import Cell, RecordProblem
from softcopy.views.calendar import heatmap_svg, last_job, legend_html

ALL_DAYS = 0
PRESETS: list[tuple[str, int]] = [
    ("all days", ALL_DAYS),
    ("last 30 days", 30),
    ("last 90 days", 90),
    ("last year", 365),
    ("last 10 years", 3653),
]


class CoveragePanel(Panel):
    """Coverage as the service computes it. `load()` shows the newest persisted snapshot and
    writes nothing (what rendering the dashboard does); `refresh()` takes a new snapshot
    (what Show does)."""

    range_start = traitlets.Instance(date, allow_none=True)  # None: from the first day with data
    range_end = traitlets.Instance(date, allow_none=True)  # None: through the last one (or today)
    shown_start = traitlets.Instance(date, allow_none=True, read_only=True)  # what is drawn
    shown_end = traitlets.Instance(date, allow_none=True, read_only=True)
    selected_day = traitlets.Instance(date, allow_none=True)
    snapshot_id = traitlets.Int(None, allow_none=True)
    totals = traitlets.Dict()
    render_seconds = traitlets.Float(0.0)  # drawing the heatmap, not computing coverage

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.cells: list[Cell] = []
        self.preset = widgets.Dropdown(options=PRESETS, value=ALL_DAYS, description="Range")
        self.start_picker = widgets.DatePicker(description="From")
        self.end_picker = widgets.DatePicker(description="To")
        self.start_picker.add_class("sc-coverage-start")
        self.end_picker.add_class("sc-coverage-end")
        widgets.link((self, "range_start"), (self.start_picker, "value"))
        widgets.link((self, "range_end"), (self.end_picker, "value"))
        self.show_button = button("Show", self.refresh)
        self.summary = widgets.HTML()
        self.summary.add_class("sc-coverage-summary")
        self.problems = widgets.HTML()  # records the sources could not read, a line each
        self.problems.add_class("sc-coverage-problems")
        self.legend = widgets.HTML()
        self.heatmap = widgets.HTML()
        self.heatmap.add_class("sc-heatmap-widget")
        self.day_picker = widgets.DatePicker(description="Day")
        self.day_picker.add_class("sc-coverage-day")
        widgets.link((self, "selected_day"), (self.day_picker, "value"))
        self.day_details = widgets.HTML()
        self.day_details.add_class("sc-day-details")
        self.children = [
            widgets.HBox([self.preset, self.start_picker, self.end_picker, self.show_button]),
            self.message_area,
            self.summary,
            self.problems,
            self.legend,
            self.heatmap,
            widgets.HTML("<b>A day in detail</b> (or hover a cell)"),
            self.day_picker,
            self.day_details,
        ]
        self.add_class("sc-coverage")
        self.preset.observe(self._apply_preset, names="value")
        self.observe(self._show_day, names="selected_day")

    @guarded("coverage")
    def load(self) -> None:
        report = service.latest_coverage(
            self.ctx, range_start_day=self.range_start, range_end_day=self.range_end
        )
        if report is None:
            self.say("no coverage snapshot of these days yet: Show takes one", "info")
            return
        self._draw(report)

    @guarded("coverage")
    def refresh(self) -> None:
        self._draw(
            service.coverage(
                self.ctx, range_start_day=self.range_start, range_end_day=self.range_end
            )
        )

    def _draw(self, report: service.CoverageReport) -> None:
        self.cells = report.cells
        days = [c.day for c in report.cells]
        today = self.ctx.today()
        start = self.range_start or (min(days) if days else today)
        end = self.range_end or (max(days) if days else today)
        began = time.perf_counter()
        svg = heatmap_svg(report.cells, start=start, end=end, sources=report.snapshot.sources)
        self.heatmap.value = f'<div class="sc-heatmap-box">{svg}</div>'
        self.render_seconds = time.perf_counter() - began
        self.set_trait("shown_start", start)
        self.set_trait("shown_end", end)
        self.snapshot_id = report.snapshot.id
        self.totals = dict(report.snapshot.totals)
        self.legend.value = legend_html(self.totals)
        self.summary.value = (
            f"snapshot {report.snapshot.id} · {start} … {end} · {len(report.cells):,} cells · "
            f"coverage {report.snapshot.seconds * 1000:.0f} ms · "
            f"drawn in {self.render_seconds * 1000:.0f} ms"
        )
        self.problems.value = problems_html(report.problems, report.problems_total)
        self.say("")
        self._show_day()

    def _apply_preset(self, change: dict[str, Any]) -> None:
        days = change["new"]
        with self.hold_trait_notifications():
            if days == ALL_DAYS:
                self.range_start = self.range_end = None
            else:
                self.range_end = self.ctx.today()
                self.range_start = self.range_end - timedelta(days=days - 1)
        self.refresh()

    def _show_day(self, _: object = None) -> None:
        day = self.selected_day
        if day is None:
            self.day_details.value = ""
            return
        rows = [
            (
                c.source,
                c.stage,
                c.state,
                c.items,
                c.recorded_digest or "",
                c.expected_digest or "",
                last_job(c),
            )
            for c in self.cells
            if c.day == day
        ]
        if not rows:
            self.day_details.value = f"<i>{day}: no cells (no source has data that day)</i>"
            return
        self.day_details.value = html_table(
            ["source", "stage", "state", "items", "input digest", "expected", "job"], rows
        )


PROBLEMS_SHOWN = 5


def problems_html(problems: list[RecordProblem], total: int) -> str:
    """A short list of the records the sources could not read; empty when there are none."""
    if not total:
        return ""
    lines = "".join(f"<li>{html.escape(p.describe())}</li>" for p in problems[:PROBLEMS_SHOWN])
    more = f"<li>… and {total - PROBLEMS_SHOWN} more</li>" if total > PROBLEMS_SHOWN else ""
    return f"<b>{total} source problem(s)</b><ul>{lines}{more}</ul>"
