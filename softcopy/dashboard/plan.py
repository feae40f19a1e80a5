"""The plan panel: choose a mode, days, sources, stages, force and whether the plan may
remove published items; Preview shows the cells and steps the plan would run, and what is
true when there are none (saving nothing); Run saves exactly the previewed plan (refused if
its cells changed since) and starts it in a detached worker; Save plan keeps it for later."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import (
    MODE_LABELS,
    Panel,
    button,
    day_span,
    guarded,
    html_table,
    human,
)
from softcopy.errors import DestructivePlan
from softcopy.ingestion import service
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.planner import DEFAULT_LOOKBACK_DAYS
from softcopy.ingestion.states import PlanMode, Stage

FORM_TRAITS = [
    "mode",
    "range_start",
    "range_end",
    "lookback_days",
    "sources",
    "stages",
    "force",
    "reconciliation_id",
    "allow_shrink",
    "skip_bad_records",
]
ALLOW_SHRINK = "Allow removing published items"
SKIP_BAD = "Skip unreadable records"
WIDE = {"description_width": "initial"}  # labels as long as they are, never cut
AUTO = {"width": "auto"}  # a checkbox as wide as its label


def preview_html(view: service.PlanView, *, cell_limit: int = 60, step_limit: int = 40) -> str:
    """What a plan would do: its cells by state, its steps, and the first cells."""
    plan = view.plan
    what = f"Plan {plan.id}" if plan.id is not None else "Preview (not saved)"
    states = Counter(str(i.state) for i in view.items)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "nothing to do"
    steps = html_table(
        ["#", "stage", "source", "days"],
        [(n, stage, source, day_span(days)) for n, (stage, source, days) in enumerate(view.steps)],
        limit=step_limit,
    )
    cells = html_table(
        ["source", "day", "stage", "why"],
        [(i.source, i.day, i.stage, i.state) for i in view.items],
        limit=cell_limit,
    )
    return (
        f'<div class="sc-preview"><p><b>{what}</b> ({MODE_LABELS[str(plan.mode)]}): '
        f"<b>{plan.cells}</b> cells ({counts}) in <b>{len(view.steps)}</b> steps</p>"
        f"{facts_html(view.facts)}"
        f'<div class="sc-cols"><div><b>Steps</b>{steps}</div><div><b>Cells</b>{cells}</div>'
        "</div></div>"
    )


def facts_html(facts: list[str]) -> str:
    """What the planner says is true of the request (why it is empty, what is left out)."""
    if not facts:
        return ""
    lines = "".join(f"<li>{html.escape(human(fact))}</li>" for fact in facts)
    return f'<ul class="sc-plan-facts">{lines}</ul>'


class PlanPanel(Panel):
    """A plan form. `plan_id` is the previewed plan (cleared when the form changes);
    `started_job_id` is the last job Run started."""

    mode = traitlets.Unicode(PlanMode.backfill_range.value)
    range_start = traitlets.Instance(date, allow_none=True)
    range_end = traitlets.Instance(date, allow_none=True)
    lookback_days = traitlets.Int(DEFAULT_LOOKBACK_DAYS)
    sources = traitlets.List(traitlets.Unicode())  # empty: every source
    stages = traitlets.List(traitlets.Unicode())  # empty: every stage
    force = traitlets.Bool(False)
    allow_shrink = traitlets.Bool(False)  # may the plan remove published items?
    skip_bad_records = traitlets.Bool(False)  # the job skips (and counts) unreadable records
    reconciliation_id = traitlets.Int(None, allow_none=True)
    executor = traitlets.Unicode(DEFAULT_EXECUTOR)
    plan_id = traitlets.Int(None, allow_none=True)
    started_job_id = traitlets.Int(None, allow_none=True)

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.mode_picker = widgets.Dropdown(
            options=[(MODE_LABELS[m.value], m.value) for m in PlanMode], description="Mode"
        )
        self.start_picker = widgets.DatePicker(description="From")
        self.end_picker = widgets.DatePicker(description="To")
        self.lookback = widgets.BoundedIntText(
            min=0, max=3660, description="Lookback days", style=WIDE
        )
        self.reconciliation = widgets.IntText(description="Reconciliation", style=WIDE)
        self.source_picker = widgets.SelectMultiple(
            options=sorted(ctx.settings.sources), rows=3, description="Sources"
        )
        self.stage_picker = widgets.SelectMultiple(
            options=[s.value for s in Stage], rows=3, description="Stages"
        )
        self.force_box = widgets.Checkbox(
            description="force (redo current cells too)", style=WIDE, layout=AUTO
        )
        self.shrink_box = widgets.Checkbox(description=ALLOW_SHRINK, style=WIDE, layout=AUTO)
        self.skip_box = widgets.Checkbox(
            description=SKIP_BAD,
            style=WIDE,
            layout=AUTO,
            tooltip="a record a source cannot read is skipped and counted, not a failed step",
        )
        self.executor_picker = widgets.Dropdown(options=executor_names(), description="Executor")
        for name, picker in [
            ("mode", self.mode_picker),
            ("range_start", self.start_picker),
            ("range_end", self.end_picker),
            ("lookback_days", self.lookback),
            ("sources", self.source_picker),
            ("stages", self.stage_picker),
            ("force", self.force_box),
            ("allow_shrink", self.shrink_box),
            ("skip_bad_records", self.skip_box),
            ("executor", self.executor_picker),
        ]:
            picker.add_class(f"sc-plan-{name.replace('_', '-')}")
            widgets.link((self, name), (picker, "value"))  # the trait seeds the widget
        self.reconciliation.observe(self._reconciliation_typed, names="value")
        self.preview_button = button("Preview", self.preview)
        self.run_button = button("Run", self.run, style="primary")
        self.save_button = button("Save plan", self.save)
        self.previewed: service.PlanView | None = None  # shown, not saved
        self.preview_area = widgets.HTML()
        self.preview_area.add_class("sc-plan-preview")
        self.children = [
            widgets.HBox([self.mode_picker, self.executor_picker]),
            widgets.HBox([self.start_picker, self.end_picker]),
            widgets.HBox([self.lookback, self.reconciliation]),
            widgets.HBox([self.source_picker, self.stage_picker]),
            widgets.HTML('<div class="sc-hint">none chosen: all sources, all stages</div>'),
            widgets.HBox([self.force_box, self.shrink_box, self.skip_box]),
            widgets.HBox([self.preview_button, self.save_button, self.run_button]),
            self.message_area,
            self.preview_area,
        ]
        self.add_class("sc-plan")
        self.observe(self._form_changed, names=FORM_TRAITS)
        self.observe(self._show_fields, names="mode")
        self._show_fields()

    def options(self) -> service.PlanOptions:
        return service.PlanOptions(
            mode=PlanMode(self.mode),
            sources=list(self.sources) or None,
            stages=[Stage(s) for s in self.stages] or None,
            range_start_day=self.range_start,
            range_end_day=self.range_end,
            lookback_days=self.lookback_days,
            force=self.force,
            reconciliation_id=self.reconciliation_id,
            allow_shrink=self.allow_shrink,
            skip_bad_records=self.skip_bad_records,
        )

    def refresh(self) -> None:
        """The form reads no persisted state; nothing to reload."""

    def take_request(self, request: dict[str, Any]) -> None:
        """Fill the form from a heatmap selection (Backfill or Repair selection), then
        preview it: the user sees the cells before anything runs."""
        with self.hold_trait_notifications():
            self.mode = request["mode"]
            self.range_start = request["start"]
            self.range_end = request["end"]
            self.sources = sorted(request["sources"])
            self.stages = []
            self.force = False
            self.reconciliation_id = request.get("reconciliation_id")
        if request.get("reconciliation_id") is not None:
            self.reconciliation.value = request["reconciliation_id"]
        self.preview()

    @contextmanager
    def _shrink_hint(self, doing: str) -> Iterator[None]:
        """A destructive plan is refused; say which box lets it through."""
        try:
            yield
        except DestructivePlan as error:
            self.say(f"{doing} refused: {error}; tick “{ALLOW_SHRINK}” to do it anyway", "error")

    @guarded("preview")
    def preview(self) -> None:
        with self._shrink_hint("preview"):
            self._preview()

    def _preview(self) -> None:
        view = service.preview_plan(self.ctx, options=self.options())
        self.preview_area.value = preview_html(view)
        self.plan_id = None
        self.previewed = view
        if view.plan.cells:
            self.say("a preview, not saved: Run saves and applies exactly these cells", "ok")
        elif view.facts:
            self.say("nothing to do: " + human("; ".join(view.facts)), "info")
        else:
            self.say("nothing to do: every chosen cell is current", "info")

    @guarded("save plan")
    def save(self) -> None:
        """Keep the previewed plan (refused if its cells changed), without running it."""
        with self._shrink_hint("save plan"):
            saved = self._save()
            self.say(
                f"plan {saved.plan.id} saved: `softcopy ingestion run {saved.plan.id}` "
                "or Run here applies it",
                "ok",
            )

    def _save(self) -> service.PlanView:
        previewed = self.previewed
        saved = service.plan(
            self.ctx,
            options=self.options(),
            expect_fingerprint=previewed.plan.fingerprint if previewed else None,
        )
        self.plan_id = saved.plan.id
        self.preview_area.value = preview_html(saved)
        return saved

    @guarded("run")
    def run(self) -> None:
        """Save and apply the previewed plan (refused if its cells changed since), else
        plan and run the form as it is."""
        with self._shrink_hint("run"):
            self._run()

    def _run(self) -> None:
        if self.plan_id is None and self.previewed is not None:
            self._save()
        outcome = service.run(
            self.ctx,
            plan_id=self.plan_id,
            options=None if self.plan_id is not None else self.options(),
            executor=self.executor,
            detach=True,
        )
        self.plan_id = None
        self.previewed = None
        if outcome.job is None:
            self.say(f"plan {outcome.plan.id} has nothing to do: every cell is current", "info")
            return
        job_id = outcome.job.job.id
        self.say(f"job {job_id} started in worker pid {outcome.worker_pid}", "ok")
        self.started_job_id = job_id

    def _form_changed(self, _: object = None) -> None:
        if self.plan_id is not None or self.previewed is not None:
            self.plan_id = None
            self.previewed = None
            self.preview_area.value = "<i>the form changed: preview again</i>"

    def _reconciliation_typed(self, change: dict[str, Any]) -> None:
        self.reconciliation_id = change["new"] or None

    def _show_fields(self, _: object = None) -> None:
        mode = PlanMode(self.mode)
        shown = {
            self.start_picker: mode is PlanMode.backfill_range,
            self.end_picker: mode is PlanMode.backfill_range,
            self.force_box: mode is PlanMode.backfill_range,
            self.lookback: mode is PlanMode.catch_up_recent,
            self.reconciliation: mode is PlanMode.repair,
        }
        for picker, visible in shown.items():
            picker.layout.display = None if visible else "none"
