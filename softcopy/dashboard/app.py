"""The ingestion dashboard: coverage, plan, jobs, reconcile and search panels over one
service context, linked so a started job is followed and a finished one refreshes coverage.

Fast to first paint: the coverage tab is built and drawn first, then Plan (where a heatmap
selection goes); the other tabs are built when first chosen (or asked for: `dashboard.jobs`).
`Dashboard.launch()`, what the Voilà notebook shows, returns the frame at once and imports
the service, opens the home and reads the newest snapshot in a kernel thread, so the page
and its scripts load meanwhile."""

from __future__ import annotations

import html
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

if TYPE_CHECKING:
    from softcopy.dashboard.coverage import CoveragePanel
    from softcopy.dashboard.jobs import JobsPanel
    from softcopy.dashboard.plan import PlanPanel
    from softcopy.dashboard.reconcile import ReconcilePanel
    from softcopy.dashboard.search import SearchPanel
    from softcopy.ingestion import service

log = logging.getLogger(__name__)
# held by the opening thread while it makes widgets; the page's request for every widget's
# state waits for it (see serialise_state_requests)
MAKING = threading.Lock()
# set once the kernel has answered a page's request for every widget's state; under Voilà
# the opening thread makes its widgets after that (at most PAGE_WAIT_SECONDS after opening)
PAGE_ASKED = threading.Event()
PAGE_WAIT_SECONDS = 5.0
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
    """Everything in one widget: `Dashboard(service.open_context())`, then display it; or
    `Dashboard.launch()`, which shows at once and opens the home in a kernel thread."""

    home = traitlets.Unicode(read_only=True)
    ready = traitlets.Bool(False)  # the coverage tab is drawn (or opening failed: `error`)
    error = traitlets.Unicode("")

    def __init__(
        self, ctx: service.Context | None = None, *, poll_interval: float = 1.0, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.ctx: service.Context | None = None
        self.poll_interval = poll_interval
        self._lock = threading.RLock()  # a tab chosen while the opening thread builds
        self._panels: dict[str, Any] = {}
        self._began = time.perf_counter()
        # where opening went, in seconds: imports (launch only), home, coverage
        self.timings: dict[str, float] = {}
        self.opened = threading.Event()  # set when ready or failed
        self.facts = widgets.HTML('<div class="sc-facts">opening the home…</div>')
        self.facts.add_class("sc-dashboard-facts")
        self.tabs = widgets.Tab(children=[_tab_box(name) for name in TABS], titles=TABS)
        self.children = [widgets.HTML(f"{STYLE}<h2>softcopy · ingestion</h2>"), self.facts]
        self.add_class("sc-dashboard")
        if ctx is not None:
            self._open(ctx)

    @classmethod
    def launch(cls, home: Path | str | None = None, *, poll_interval: float = 1.0) -> Dashboard:
        """The dashboard's frame now; the service imported, the home opened (SOFTCOPY_HOME,
        else the user data dir) and its newest snapshot drawn in a kernel thread."""
        made = cls(poll_interval=poll_interval)
        made._began = time.perf_counter()
        serialise_state_requests()
        threading.Thread(
            target=made._open_home, args=(home,), name="softcopy-dashboard-open", daemon=True
        ).start()
        return made

    def _open_home(self, home: Path | str | None) -> None:
        try:
            from softcopy.ingestion import service

            open_context = service.open_context  # imports what opening a home needs, no more
            self.timings["imports"] = time.perf_counter() - self._began
            ctx = open_context(Path(home) if home is not None else None)
            self.timings["home"] = time.perf_counter() - self._began - self.timings["imports"]
            if _before_the_page_asks():  # the tabs' imports, then the page's state request
                done = sum(self.timings.values())
                self.timings["page"] = time.perf_counter() - self._began - done
            with MAKING:
                self._open(ctx)
        except Exception as error:  # shown in the page, never a silent blank
            from softcopy.dashboard.base import describe
            from softcopy.errors import SoftcopyError

            log.exception("dashboard: opening the home failed")
            said = describe(error) if isinstance(error, SoftcopyError) else repr(error)
            self.error = said
            self.facts.value = (
                f'<div class="sc-msg sc-error">the dashboard could not open: '
                f"{html.escape(said)}</div>"
            )
            self.opened.set()

    def _open(self, ctx: service.Context) -> None:
        """Build and draw the coverage tab (reading what is persisted, writing nothing), then
        show it; a deep link (?job=N) opens the Jobs tab on that job."""
        from softcopy.dashboard.coverage import CoveragePanel

        began = time.perf_counter()
        self.ctx = ctx
        self.set_trait("home", str(ctx.settings.home))
        coverage = CoveragePanel(ctx, poll_interval=self.poll_interval)
        coverage.observe(self._plan_selection, names="plan_request")
        self._panels["Coverage"] = coverage
        self._place("Coverage", coverage)
        coverage.load()
        self.timings["coverage"] = time.perf_counter() - began
        opened = " · ".join(f"{what} {seconds:.2f} s" for what, seconds in self.timings.items())
        self.facts.value = (
            f'<div class="sc-facts" data-opened="{html.escape(opened)}">'
            f"home {html.escape(self.home)} · {len(ctx.settings.sources)} sources</div>"
        )
        self.tabs.observe(self._tab_chosen, names="selected_index")
        linked = linked_job()  # a deep link (?job=N) opens the dashboard on that job
        if linked is not None:  # before the tabs are shown: a browser drawing them picks
            self.jobs.show(linked)  # the first tab if the choice comes after
            self.show_tab("Jobs")
        self.children = [*self.children[:2], self.tabs]
        self.ready = True
        # the tab a heatmap selection opens, built now the heatmap is drawn, so Backfill
        # selection waits for the planner alone (it reads nothing: a few widgets)
        self._panel("Plan")
        self.opened.set()

    # -- the panels, each built when first wanted -------------------------------------------

    @property
    def coverage(self) -> CoveragePanel:
        return self._panel("Coverage")

    @property
    def plan(self) -> PlanPanel:
        return self._panel("Plan")

    @property
    def jobs(self) -> JobsPanel:
        return self._panel("Jobs")

    @property
    def reconcile(self) -> ReconcilePanel:
        return self._panel("Reconcile")

    @property
    def search(self) -> SearchPanel:
        return self._panel("Search")

    def built(self) -> list[str]:
        """The tabs built so far, in tab order."""
        return [name for name in TABS if name in self._panels]

    def _panel(self, name: str) -> Any:
        # a built panel without the lock: a panel's poller thread asks for one (the jobs
        # panel's 'finished' wants Coverage) while holding its own lock, which the thread
        # building another panel under this lock may be waiting for
        built = self._panels.get(name)
        if built is not None:
            return built
        with self._lock:
            if name in self._panels:
                return self._panels[name]
            if self.ctx is None:
                raise RuntimeError("the dashboard has not opened its home yet")
            made = getattr(self, f"_build_{name.lower()}")(self.ctx)
            self._panels[name] = made
            self._place(name, made)
            return made

    def _place(self, name: str, panel: widgets.Widget) -> None:
        """Into its tab's box: the tabs' own children never change once shown (a browser
        redraws the whole tab bar on that, and loses the chosen tab)."""
        self.tabs.children[TABS.index(name)].children = [panel]

    def _build_plan(self, ctx: service.Context) -> PlanPanel:
        from softcopy.dashboard.plan import PlanPanel

        plan = PlanPanel(ctx)
        widgets.dlink((self.coverage, "shown_start"), (plan, "range_start"))
        widgets.dlink((self.coverage, "shown_end"), (plan, "range_end"))
        plan.observe(self._follow, names="started_job_id")
        plan.refresh()
        return plan

    def _build_jobs(self, ctx: service.Context) -> JobsPanel:
        from softcopy.dashboard.jobs import JobsPanel

        jobs = JobsPanel(ctx, poll_interval=self.poll_interval)
        jobs.observe(lambda _: self.coverage.refresh(), names="finished")
        # a live job is drawn on the heatmap as it goes (the coverage panel polls its rows)
        jobs.observe(self._live_changed, names="live")
        jobs.refresh()
        return jobs

    def _build_reconcile(self, ctx: service.Context) -> ReconcilePanel:
        from softcopy.dashboard.reconcile import ReconcilePanel

        reconcile = ReconcilePanel(ctx)
        reconcile.observe(self._follow, names="started_job_id")
        reconcile.observe(lambda _: self.coverage.refresh_marks(), names="reconciliation_id")
        # a repair run uses the executor chosen in Plan (the faces' default until then)
        widgets.dlink((self.plan, "executor"), (reconcile, "executor"))
        reconcile.refresh()
        return reconcile

    def _build_search(self, ctx: service.Context) -> SearchPanel:
        from softcopy.dashboard.search import SearchPanel

        search = SearchPanel(ctx)
        search.observe(self._open_day, names="wanted_day")
        return search

    # -- reading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read what is persisted and write nothing: rendering the dashboard changes no
        state (only a click does), so a stray GET of the page starts nothing."""
        self.coverage.load()
        self._refresh_built()

    def refresh(self) -> None:
        """Read everything again, taking a new coverage snapshot (polling resumes if a job
        is live)."""
        self.coverage.refresh()
        self._refresh_built()

    def _refresh_built(self) -> None:
        for name in ("Plan", "Jobs", "Reconcile"):  # search reads only when asked
            if name in self._panels:
                self._panels[name].refresh()

    def show_tab(self, name: str) -> None:
        self._panel(name)
        self.tabs.selected_index = TABS.index(name)

    def close(self) -> None:
        """Stop polling (the jobs go on: they belong to their workers), then close."""
        for name in ("Jobs", "Coverage"):
            if name in self._panels:
                self._panels[name].stop()
        super().close()

    # -- links between the panels -------------------------------------------------------------

    def _tab_chosen(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            with self._lock:
                self._panel(TABS[change["new"]])

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


def serialise_state_requests() -> None:
    """Make the kernel answer the page's request for every widget's state only while no
    widget is being made in the opening thread (which holds MAKING).

    ipywidgets answers it (`request_states`, when Voilà's page connects) on the kernel's
    thread by iterating its registry of widgets without a lock; a widget made meanwhile
    in the opening thread breaks the answer ("dictionary changed size during iteration"),
    and the page waits 4 s, then asks widget by widget and misses the ones made after it
    asked: a page drawn ~10 s late, or without some of its rows. Installed once, before
    the page can connect (the handler is bound when the page opens its control channel);
    a no-op if this ipywidgets has no such handler."""
    handler = widgets.Widget.__dict__.get("_handle_control_comm_msg")
    if not isinstance(handler, classmethod) or getattr(handler.__func__, "serialised", False):
        return
    answer_unlocked = handler.__func__

    def answer(cls: type[widgets.Widget], msg: dict[str, Any]) -> None:
        with MAKING:
            answer_unlocked(cls, msg)
        PAGE_ASKED.set()

    answer.serialised = True  # type: ignore[attr-defined]
    widgets.Widget._handle_control_comm_msg = classmethod(answer)  # type: ignore[assignment]


def _before_the_page_asks() -> bool:
    """Under Voilà, wait (a bounded time) for the page to have its widgets' states before
    making the first tabs: widgets whose messages reach Voilà's page while it is still
    loading that answer were drawn without some of their children (a coverage tab without
    its first row), or not at all. Their imports are done first, while the page loads.
    Elsewhere (JupyterLab, a script) nothing waits: no page asks at this moment. True
    when it waited. (Voilà's progressive rendering, off in `softcopy serve`, asks no such
    thing: this would wait the whole PAGE_WAIT_SECONDS.)"""
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("voila"):
        return False
    import softcopy.dashboard.coverage
    import softcopy.dashboard.plan  # noqa: F401
    from softcopy.ingestion import service

    service.latest_coverage  # noqa: B018 (its module, imported now)
    PAGE_ASKED.wait(PAGE_WAIT_SECONDS)
    return True


def linked_job(query: str | None = None) -> int | None:
    """The job a dashboard URL names (`?job=N`); Voilà hands the kernel the page's query as
    QUERY_STRING. None when it names none (or not a number)."""
    from urllib.parse import parse_qs

    query = os.environ.get("QUERY_STRING", "") if query is None else query
    values = parse_qs(query).get("job", [])
    return int(values[0]) if values and values[0].isdigit() else None


def _tab_box(name: str) -> widgets.VBox:
    """A tab's box: its panel once built (when first chosen), a line until then."""
    made = widgets.VBox([widgets.HTML(f'<i class="sc-facts">opening {name.lower()}…</i>')])
    made.add_class("sc-tab")
    return made
