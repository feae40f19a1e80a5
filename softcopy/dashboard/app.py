"""The ingestion dashboard: coverage, plan, jobs and reconcile panels over one service
context, linked so a started job is followed and a finished one refreshes coverage."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.coverage import CoveragePanel
from softcopy.dashboard.jobs import JobsPanel, linked_job
from softcopy.dashboard.plan import PlanPanel
from softcopy.dashboard.reconcile import ReconcilePanel
from softcopy.dashboard.search import SearchPanel
from softcopy.ingestion import service

TABS = ["Coverage", "Plan", "Jobs", "Reconcile", "Search"]
STYLE = """<style>
.sc-dashboard { font-size: 13px; }
.sc-dashboard h2 { margin: 4px 0; }
.sc-msg { padding: 4px 8px; border-radius: 4px; margin: 4px 0; white-space: pre-wrap; }
.sc-error { background: #ffebe9; color: #82071e; border: 1px solid #ff8182; }
.sc-ok { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.sc-info { background: #ddf4ff; color: #0a3069; border: 1px solid #54aeff; }
.sc-badge { color: #fff; border-radius: 10px; padding: 1px 8px; font-size: 12px; }
.sc-table { border-collapse: collapse; font-size: 12px; margin: 4px 0; }
.sc-table th, .sc-table td { border-bottom: 1px solid #d0d7de; padding: 2px 8px;
  text-align: left; vertical-align: top; }
.sc-table th { background: #f6f8fa; }
.sc-cols { display: flex; gap: 24px; flex-wrap: wrap; }
.sc-legend { margin: 4px 0; }
.sc-chip { margin-right: 14px; white-space: nowrap; }
.sc-chip i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
  border: 1px solid #d0d7de; vertical-align: middle; }
.sc-heatmap-box { overflow-x: auto; max-width: 100%; }
.sc-heatmap rect:hover { stroke: #24292f; stroke-width: 1; }
.sc-chip.sc-problem b { color: #82071e; }
.sc-row { flex-wrap: wrap; gap: 4px 8px; align-items: center; }
.sc-dashboard .jupyter-button:disabled, .sc-dashboard .jupyter-button.mod-disabled {
  opacity: 0.4; cursor: not-allowed; box-shadow: none; filter: grayscale(1); }
.sc-dashboard .widget-label { white-space: nowrap; }
/* phones: rows wrap, inputs take the full width, only the heatmap scrolls sideways */
@media (max-width: 700px) {
  .sc-dashboard { overflow-x: hidden; }
  .sc-dashboard .widget-hbox { flex-wrap: wrap; }
  .sc-dashboard .widget-hbox > .widget-inline-hbox, .sc-dashboard .widget-hbox > .widget-select,
  .sc-dashboard .widget-hbox > .widget-text, .sc-dashboard .widget-hbox > .widget-datepicker,
  .sc-dashboard .widget-hbox > .widget-dropdown { width: 100%; max-width: 100%; }
  .sc-dashboard .widget-inline-hbox input, .sc-dashboard .widget-inline-hbox select {
    flex: 1 1 auto; min-width: 0; }
  .sc-dashboard .sc-hint { margin-left: 0; }
  .sc-dashboard .sc-cols { display: block; }
  .sc-dashboard .sc-table { display: block; overflow-x: auto; max-width: 100%; }
  .sc-dashboard .lm-TabBar-content { flex-wrap: wrap; }
  .sc-dashboard .lm-TabBar-tab { min-width: 0; max-width: none; padding: 0 8px; flex: 0 0 auto; }
}
pre.sc-logs { max-height: 260px; overflow: auto; font-size: 11px; line-height: 1.35;
  background: #f6f8fa; padding: 6px; margin: 0; }
.sc-table, .sc-preview, .sc-msg { line-height: 1.4; }
.sc-dashboard a { color: #0969da; text-decoration: underline; }
.sc-hint { color: #57606a; font-style: italic; margin-left: 90px; }
.sc-job-row.sc-selected { background: #ddf4ff; }
.sc-facts { color: #57606a; }
.sc-more, .sc-empty { color: #57606a; font-style: italic; }
</style>"""


class Dashboard(widgets.VBox):
    """Everything in one widget: `Dashboard(service.open_context())`, then display it."""

    home = traitlets.Unicode(read_only=True)

    def __init__(self, ctx: service.Context, *, poll_interval: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.ctx = ctx
        self.set_trait("home", str(ctx.settings.home))
        self.coverage = CoveragePanel(ctx, poll_interval=poll_interval)
        self.plan = PlanPanel(ctx)
        self.jobs = JobsPanel(ctx, poll_interval=poll_interval)
        self.reconcile = ReconcilePanel(ctx)
        self.search = SearchPanel(ctx)
        self.tabs = widgets.Tab(
            children=[self.coverage, self.plan, self.jobs, self.reconcile, self.search]
        )
        self.tabs.titles = tuple(TABS)
        self.children = [
            widgets.HTML(
                f"{STYLE}<h2>softcopy · ingestion</h2>"
                f'<div class="sc-facts">home {html.escape(self.home)} · '
                f"{len(ctx.settings.sources)} sources</div>"
            ),
            self.tabs,
        ]
        self.add_class("sc-dashboard")
        widgets.dlink((self.coverage, "shown_start"), (self.plan, "range_start"))
        widgets.dlink((self.coverage, "shown_end"), (self.plan, "range_end"))
        self.plan.observe(self._follow, names="started_job_id")
        self.reconcile.observe(self._follow, names="started_job_id")
        self.jobs.observe(lambda _: self.coverage.refresh(), names="finished")
        # a live job is drawn on the heatmap as it goes (the coverage panel polls its rows)
        self.jobs.observe(self._live_changed, names="live")
        self.coverage.observe(self._plan_selection, names="plan_request")
        self.reconcile.observe(lambda _: self.coverage.refresh_marks(), names="reconciliation_id")
        self.search.observe(self._open_day, names="wanted_day")
        # a repair run uses the executor chosen in Plan (the faces' default until then)
        widgets.dlink((self.plan, "executor"), (self.reconcile, "executor"))
        self.load()
        linked = linked_job()  # a deep link (?job=N) opens the dashboard on that job
        if linked is not None:
            self.jobs.show(linked)
            self.show_tab("Jobs")

    def load(self) -> None:
        """Read what is persisted and write nothing: rendering the dashboard changes no
        state (only a click does), so a stray GET of the page starts nothing."""
        self.coverage.load()
        self.plan.refresh()
        self.jobs.refresh()
        self.reconcile.refresh()

    def refresh(self) -> None:
        """Read everything again, taking a new coverage snapshot (polling resumes if a job
        is live)."""
        self.coverage.refresh()
        self.plan.refresh()
        self.jobs.refresh()
        self.reconcile.refresh()

    def show_tab(self, name: str) -> None:
        self.tabs.selected_index = TABS.index(name)

    def close(self) -> None:
        """Stop polling (the jobs go on: they belong to their workers), then close."""
        self.jobs.stop()
        self.coverage.stop()
        super().close()

    def _follow(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.jobs.show(change["new"])
            self.coverage.follow_live()
            self.show_tab("Jobs")

    def _live_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.coverage.follow_live()

    def _plan_selection(self, change: dict[str, Any]) -> None:
        """Backfill or Repair selection: the plan panel takes the days, previews them."""
        if change["new"]:
            self.show_tab("Plan")
            self.plan.take_request(change["new"])

    def _open_day(self, change: dict[str, Any]) -> None:
        """A search hit's day, opened in coverage."""
        if change["new"]:
            day, source = change["new"]
            self.show_tab("Coverage")
            self.coverage.open_day(day, source)
