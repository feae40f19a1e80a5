"""The coverage panel: an interactive heatmap of every (source, day, stage) cell (click a cell
to open its day; drag or shift-click to select days and backfill or repair them), the source
problems, the last reconcile's findings outlined, and a running job drawn live from its
persisted rows (the panel polls; it never runs anything itself)."""

from __future__ import annotations

import html
import threading
import time
from datetime import date, timedelta
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, button, guarded, html_table
from softcopy.dashboard.heatmap import HeatmapWidget, Pick
from softcopy.dashboard.poller import Poller
from softcopy.ingestion import service
from softcopy.ingestion.coverage import Cell, FutureDays, RecordProblem
from softcopy.ingestion.states import CellState, PlanMode
from softcopy.report import fmt
from softcopy.views.calendar import (
    NO_DATA_COLOUR,
    PROBLEM_CODES,
    SHOWN_STATES,
    cell_code,
    choose_unit,
    heatmap_data,
    last_job,
)

ALL_DAYS = 0
PRESETS: list[tuple[str, int]] = [
    ("all days", ALL_DAYS),
    ("last 30 days", 30),
    ("last 90 days", 90),
    ("last year", 365),
    ("last 10 years", 3653),
]
UNIT_CHOICES = [("auto", "auto"), ("days", "day"), ("weeks", "week"), ("months", "month")]
WIDE = {"description_width": "initial"}  # labels as long as they are, never cut


class CoveragePanel(Panel):
    """Coverage as the service computes it. `load()` shows the newest persisted snapshot and
    writes nothing (what rendering the dashboard does); `refresh()` takes a new snapshot
    (what Show does). `plan_request` asks the plan panel for a plan of the selection."""

    range_start = traitlets.Instance(date, allow_none=True)  # None: from the first day with data
    range_end = traitlets.Instance(date, allow_none=True)  # None: through the last one (or today)
    shown_start = traitlets.Instance(date, allow_none=True, read_only=True)  # what is drawn
    shown_end = traitlets.Instance(date, allow_none=True, read_only=True)
    selected_day = traitlets.Instance(date, allow_none=True)
    selection = traitlets.Instance(Pick, allow_none=True)  # days chosen by drag or shift-click
    snapshot_id = traitlets.Int(None, allow_none=True)
    reconciliation_id = traitlets.Int(None, allow_none=True)  # whose findings are outlined
    totals = traitlets.Dict()
    live_cells = traitlets.Int(0)  # cells live jobs hold, as last polled
    plan_request = traitlets.Dict()  # {"mode", "start", "end", "sources", "reconciliation_id"}
    render_seconds = traitlets.Float(0.0)  # building the heatmap, not computing coverage

    def __init__(self, ctx: service.Context, *, poll_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.cells: list[Cell] = []
        self._report: service.CoverageReport | None = None
        self._marks: list[tuple[str, date, Any]] = []
        self._live: dict[Any, service.LiveCell] = {}
        self._reconcile_line = ""
        self._forget_drawings()
        self._lock = threading.RLock()  # the poller thread and callbacks both draw
        # half as often as the jobs list: a 10-year backfill holds ~30,000 cells to redraw
        self.poller = Poller(self.poll_live, poll_interval * 2)
        self.preset = widgets.Dropdown(options=PRESETS, value=ALL_DAYS, description="Range")
        self.start_picker = widgets.DatePicker(description="From")
        self.end_picker = widgets.DatePicker(description="To")
        self.start_picker.add_class("sc-coverage-start")
        self.end_picker.add_class("sc-coverage-end")
        widgets.link((self, "range_start"), (self.start_picker, "value"))
        widgets.link((self, "range_end"), (self.end_picker, "value"))
        self.unit = widgets.Dropdown(options=UNIT_CHOICES, value="auto", description="Cells")
        self.unit.add_class("sc-coverage-unit")
        self.show_button = button("Show", self.refresh, style="primary")
        self.header = widgets.HTML()
        self.header.add_class("sc-coverage-summary")
        # items dated after today (never caught up), then what the sources could not read
        self.problems = widgets.HTML()
        self.problems.add_class("sc-coverage-problems")
        self.legend = widgets.HTML()
        self.heatmap = HeatmapWidget(
            on_click=self._clicked, on_select=self._selected, layout={"width": "100%"}
        )
        self.heatmap.add_class("sc-heatmap-widget")
        self.problems_only = widgets.Checkbox(
            description="problems only", style=WIDE, layout={"width": "auto"}
        )
        self.problems_only.add_class("sc-coverage-problems-only")
        widgets.link((self.problems_only, "value"), (self.heatmap, "problems_only"))
        self.next_button = button("Next problem", self.next_problem)
        self.selection_label = widgets.HTML()
        self.selection_label.add_class("sc-selection")
        self.backfill_button = button("Backfill selection", self.backfill_selection)
        self.repair_button = button("Repair selection", self.repair_selection)
        self.clear_button = button("Clear selection", lambda: self.select(None))
        self.day_picker = widgets.DatePicker(description="Day")
        self.day_picker.add_class("sc-coverage-day")
        widgets.link((self, "selected_day"), (self.day_picker, "value"))
        self.day_details = widgets.HTML()
        self.day_details.add_class("sc-day-details")
        self.children = [
            _row(self.preset, self.start_picker, self.end_picker, self.unit, self.show_button),
            self.message_area,
            self.header,
            self.problems,
            self.legend,
            _row(self.problems_only, self.next_button, self.selection_label),
            _row(self.backfill_button, self.repair_button, self.clear_button),
            self.heatmap,
            widgets.HTML(
                "<b>A day in detail</b> <span class='sc-facts'>(click a cell; drag or "
                "shift-click to select days)</span>"
            ),
            self.day_picker,
            self.day_details,
        ]
        self.add_class("sc-coverage")
        self.preset.observe(self._apply_preset, names="value")
        self.unit.observe(lambda _: self._redraw(), names="value")
        self.observe(self._show_day, names="selected_day")
        self.observe(self._show_selection, names="selection")
        self._show_selection()

    # -- reading --------------------------------------------------------------------------

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

    def poll_live(self) -> bool:
        """Redraw the cells live jobs hold from their rows (checkpointed ones current);
        True while any job is live (the poller goes on)."""
        with self._lock:
            live = service.live_cells(self.ctx, sources=self._sources())
            # a job ended (its cells left the live rows; another may still be live): its
            # cells are in the ledger now, not in the snapshot drawn
            ended = any(key not in live for key in self._live)
            self.live_cells = len(live)
            if ended:
                self._live = live
                self.refresh()
            elif live != self._live:
                self._live = live
                self._forget_drawings()
                self._redraw()
            return bool(live)

    def follow_live(self) -> None:
        """Poll while a job is live (the dashboard calls this when one starts)."""
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def _sources(self) -> list[str]:
        if self._report is not None:
            return list(self._report.snapshot.sources)
        return sorted(self.ctx.settings.sources)

    def _draw(self, report: service.CoverageReport) -> None:
        with self._lock:
            self._report = report
            self.cells = report.cells
            self._live = service.live_cells(self.ctx, sources=list(report.snapshot.sources))
            self.live_cells = len(self._live)
            reconciled = service.latest_reconciliation(self.ctx)
            self.reconciliation_id = reconciled.run.id if reconciled else None
            self._marks = [
                (f.source, f.day, f.stage)
                for f in (reconciled.findings if reconciled else [])
                if f.source and f.day and f.stage
            ]
            self._reconcile_line = _reconcile_line(reconciled)
            self.snapshot_id = report.snapshot.id
            self.totals = dict(report.snapshot.totals)
            self.problems.value = future_html(report.future_days) + problems_html(
                report.problems, report.problems_total
            )
            self._forget_drawings()
            self._redraw()
            self.say("")
            self._show_day()
        if self._live:
            self.follow_live()

    def _redraw(self) -> None:
        report = self._report
        if report is None:
            return
        began = time.perf_counter()
        if self._span is None:
            today = self.ctx.today()
            # up to today: days after it (a record dated 9999-12-31) are warned of above the
            # map, not drawn (a span to the year 9999 is no map, and overflows `date`)
            days = [c.day for c in report.cells] + [key[1] for key in self._live]
            days = [d for d in days if d <= today]
            self._span = (min(days) if days else today, max(days) if days else today)
        start = self.range_start or self._span[0]
        end = self.range_end or self._span[1]
        unit = choose_unit(start, end, self.unit.value)
        data = self._drawings.get((unit, start, end))
        if data is None:  # built once per unit until the cells, marks or live rows change
            data = self._drawings[(unit, start, end)] = heatmap_data(
                report.cells,
                start=start,
                end=end,
                sources=list(report.snapshot.sources),
                unit=unit,
                marked=self._marks,
                bad_days=[(p.source, p.day) for p in report.problems if p.day and not p.repaired],
                live=self._live,
            )
        self.heatmap.data = data
        self.render_seconds = time.perf_counter() - began
        self.set_trait("shown_start", start)
        self.set_trait("shown_end", end)
        self.legend.value = legend_html(data)
        per = {"day": "a day", "week": "a week", "month": "a month"}[data["unit"]]
        live = f" · {self.live_cells:,} cells held by live jobs (live)" if self._live else ""
        self.header.value = (
            f"snapshot {report.snapshot.id} taken {fmt(report.snapshot.taken_at)} · "
            f"{start} … {end} · {len(report.cells):,} cells, each square {per} · "
            f"coverage {report.snapshot.seconds * 1000:.0f} ms · drawn in "
            f"{self.render_seconds * 1000:.0f} ms{live}<br>{self._reconcile_line}"
        )

    def _forget_drawings(self) -> None:
        self._drawings: dict[tuple[str, date, date], dict[str, Any]] = {}
        self._span: tuple[date, date] | None = None  # the first and last day with cells

    # -- what the user does -----------------------------------------------------------------

    def _clicked(self, pick: Pick) -> None:
        """A clicked cell opens its day: for a week or a month, its worst day."""
        self.selected_day = self._worst_day(pick)

    def _selected(self, pick: Pick) -> None:
        self.selection = pick

    def select(self, pick: Pick | None) -> None:
        self.selection = pick
        self.heatmap.select(pick)

    def next_problem(self) -> None:
        spot = self.heatmap.next_problem()
        if spot is None:
            self.say("no problems in the days shown", "ok")
            return
        r, c = spot
        row = self.heatmap.data["rows"][r]
        first, last = self.heatmap.data["columns"][c]
        pick = Pick(
            date.fromisoformat(first), date.fromisoformat(last), [row["source"]], None, r, c
        )
        self.selected_day = self._worst_day(pick)
        self.say("")

    def open_day(self, day: date, source: str | None = None) -> None:
        """Show one day (a search hit's, say): widen the range when it is not drawn."""
        if (
            self._report is None
            or not (self.shown_start and self.shown_end)
            or not (self.shown_start <= day <= self.shown_end)
        ):
            with self.hold_trait_notifications():
                self.preset.value = ALL_DAYS
                self.range_start = self.range_end = None
            self.load()
            if self._report is None:  # no snapshot yet: the click asks for one
                self.refresh()
        self.selected_day = day
        data = self.heatmap.data
        for r, row in enumerate(data.get("rows", [])):
            if row["source"] == source and row["stage"] is None:
                iso = day.isoformat()
                c = next((i for i, (a, b) in enumerate(data["columns"]) if a <= iso <= b), None)
                if c is not None:
                    self.heatmap.focus = [r, c]

    @guarded("backfill selection")
    def backfill_selection(self) -> None:
        pick = self._need_selection()
        if pick is not None:
            self.plan_request = _request(PlanMode.backfill_range, pick)

    @guarded("repair selection")
    def repair_selection(self) -> None:
        """Reconcile the selected days, then ask for a plan that repairs what it found."""
        pick = self._need_selection()
        if pick is None:
            return
        report = service.reconcile(
            self.ctx, sources=pick.sources, range_start_day=pick.start, range_end_day=pick.end
        )
        if not report.findings:
            self.say(f"reconcile {report.run.id} found nothing to repair in {_span(pick)}", "ok")
            return
        self.refresh_marks()
        self.plan_request = _request(PlanMode.repair, pick, reconciliation_id=report.run.id)

    def refresh_marks(self) -> None:
        """Outline the newest reconcile's findings (after a reconcile elsewhere)."""
        if self._report is not None:
            self._draw(self._report)

    def _need_selection(self) -> Pick | None:
        if self.selection is None:
            self.say("select days first: drag across the heatmap, or click then shift-click")
        return self.selection

    def _worst_day(self, pick: Pick) -> date:
        """The day in the pick whose cell (of its sources and stage) is worst, else its first."""
        rank = {code: n for n, code in enumerate(SHOWN_STATES)}
        best: tuple[int, date] | None = None
        for cell in self.cells:
            if cell.source not in pick.sources or not pick.start <= cell.day <= pick.end:
                continue
            if pick.stage is not None and str(cell.stage) != pick.stage:
                continue
            held = self._live.get((cell.source, cell.day, cell.stage))
            key = (rank[cell_code(cell, held)], cell.day)
            if best is None or key < best:
                best = key
        return best[1] if best else pick.start

    def _apply_preset(self, change: dict[str, Any]) -> None:
        days = change["new"]
        with self.hold_trait_notifications():
            if days == ALL_DAYS:
                self.range_start = self.range_end = None
            else:
                self.range_end = self.ctx.today()
                self.range_start = self.range_end - timedelta(days=days - 1)
        self.refresh()

    def _show_selection(self, _: object = None) -> None:
        pick = self.selection
        for made in (self.backfill_button, self.repair_button, self.clear_button):
            made.disabled = pick is None
            made.tooltip = None if pick else "select days first (drag, or click then shift-click)"
        self.selection_label.value = (
            f"selected: <b>{html.escape(_span(pick))}</b> · {html.escape(', '.join(pick.sources))}"
            if pick
            else "<span class='sc-facts'>no days selected</span>"
        )

    def _show_day(self, _: object = None) -> None:
        day = self.selected_day
        if day is None:
            self.day_details.value = ""
            return
        rows = [
            (
                c.source,
                c.stage,
                _state_label(c, self._live.get((c.source, c.day, c.stage))),
                artifact_label(c),
                c.items,
                c.recorded_digest or "",
                c.expected_digest or "",
                last_job(c),
            )
            for c in self.cells
            if c.day == day
        ]
        marks = sum(1 for source, d, _ in self._marks if d == day)
        flagged = f" · {marks} flagged by the last reconcile" if marks else ""
        if not rows:
            self.day_details.value = f"<i>{day}: no cells (no source has data that day)</i>"
            return
        self.day_details.value = f"<b>{day}</b>{flagged}" + html_table(
            ["source", "stage", "state", "artifact", "items", "input digest", "expected", "job"],
            rows,
        )


PROBLEMS_SHOWN = 5


def _row(*children: widgets.Widget) -> widgets.HBox:
    """A row of controls that wraps on a narrow screen."""
    box = widgets.HBox(list(children))
    box.add_class("sc-row")
    return box


def _span(pick: Pick) -> str:
    days = (pick.end - pick.start).days + 1
    if days == 1:
        return str(pick.start)
    return f"{pick.start} … {pick.end} ({days} days)"


def _request(mode: PlanMode, pick: Pick, reconciliation_id: int | None = None) -> dict[str, Any]:
    return {
        "mode": mode.value,
        "start": pick.start,
        "end": pick.end,
        "sources": list(pick.sources),
        "reconciliation_id": reconciliation_id,
        "asked": time.monotonic(),  # the same selection asked twice is still a change
    }


def _state_label(cell: Cell, live: service.LiveCell | None) -> str:
    return SHOWN_STATES[cell_code(cell, live)][0]


def artifact_label(cell: Cell) -> str:
    """Whether the artifact of a cell recorded done exists (coverage checks it)."""
    if getattr(cell, "artifact_missing", False):
        return "MISSING"
    return "present" if cell.state == CellState.current else ""


def _reconcile_line(report: service.ReconcileReport | None) -> str:
    if report is None:
        return "<span class='sc-facts'>never reconciled: the Reconcile tab checks the index</span>"
    run = report.run
    outlined = sum(1 for f in report.findings if f.source and f.day and f.stage)
    return (
        f"last reconcile #{run.id} at {html.escape(fmt(run.created_at))}: "
        f"{run.findings_count:,} findings, {outlined:,} outlined"
    )


def legend_html(data: dict[str, Any]) -> str:
    """Each shown state's colour and its count in the drawing (stage rows), and no data."""
    counts: dict[str, int] = {}
    for row in data["rows"]:
        if row["stage"] is None:
            continue
        for bucket in row["counts"]:
            for part in filter(None, bucket.split(",")):
                counts[part[0]] = counts.get(part[0], 0) + int(part[1:])
    chips = [
        f'<span class="sc-chip{" sc-problem" if code in PROBLEM_CODES else ""}">'
        f'<i style="background:{colour}"></i>{html.escape(name)} '
        f"<b>{counts.get(code, 0):,}</b></span>"
        for code, (name, colour) in SHOWN_STATES.items()
    ]
    chips.append(f'<span class="sc-chip"><i style="background:{NO_DATA_COLOUR}"></i>no data</span>')
    chips.append(
        '<span class="sc-chip"><i style="border:2px solid #24292f"></i>reconcile finding</span>'
        '<span class="sc-chip"><i style="border:2px dashed #cf222e"></i>unreadable records</span>'
    )
    return f'<div class="sc-legend">{"".join(chips)}</div>'


def future_html(future: list[FutureDays]) -> str:
    """A warning line per source with items dated after today (a wrong clock or a typo in
    a record): catch_up_recent never reaches them; empty when there are none."""
    if not future:
        return ""
    lines = "".join(f"<li>{html.escape(f.describe())}</li>" for f in future)
    return (
        '<div class="sc-future-dated"><b>warning: items dated after today</b> '
        "(catch_up_recent never reaches them; check the record's date or the clock that "
        f"wrote it)<ul>{lines}</ul></div>"
    )


def problems_html(problems: list[RecordProblem], total: int) -> str:
    """A short list of what the sources could not read; empty when there is nothing."""
    if not total:
        return ""
    lines = "".join(f"<li>{html.escape(p.describe())}</li>" for p in problems[:PROBLEMS_SHOWN])
    more = f"<li>… and {total - PROBLEMS_SHOWN:,} more</li>" if total > PROBLEMS_SHOWN else ""
    noun = "problem" if total == 1 else "problems"
    return f"<b>{total:,} source {noun}</b><ul>{lines}{more}</ul>"
