"""The reconcile panel: compare persisted state with the world, show the findings, make a
repair plan from them, preview it, run it."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import MODE_LABELS, Panel, button, guarded, html_table
from softcopy.dashboard.plan import ALLOW_SHRINK, preview_html
from softcopy.errors import DestructivePlan
from softcopy.ingestion import service
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.states import PlanMode


def findings_html(report: service.ReconcileReport, *, limit: int = 100) -> str:
    run = report.run
    kinds = Counter(str(f.kind) for f in report.findings)
    summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    head = (
        f"<p><b>Reconciliation {run.id}</b>: "
        + (f"<b>{run.findings_count}</b> findings ({summary})" if report.findings else "all clear")
        + (" · sources drifted since they were published" if run.drift else "")
        + "</p>"
    )
    if not report.findings:
        return head
    table = html_table(
        ["kind", "source", "day", "stage", "job", "detail"],
        [
            (str(f.kind).replace("_", " "), f.source, f.day, f.stage, f.job_id, f.detail)
            for f in report.findings
        ],
        limit=limit,
    )
    return head + table


class ReconcilePanel(Panel):
    """`reconciliation_id` is the last run shown; `repair_plan_id` the plan made from it;
    `started_job_id` the repair job Run started."""

    range_start = traitlets.Instance(date, allow_none=True)
    executor = traitlets.Unicode(DEFAULT_EXECUTOR)  # where Run repair runs its steps
    range_end = traitlets.Instance(date, allow_none=True)
    reconciliation_id = traitlets.Int(None, allow_none=True)
    repair_plan_id = traitlets.Int(None, allow_none=True)
    started_job_id = traitlets.Int(None, allow_none=True)

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.start_picker = widgets.DatePicker(description="From")
        self.end_picker = widgets.DatePicker(description="To")
        widgets.link((self, "range_start"), (self.start_picker, "value"))
        widgets.link((self, "range_end"), (self.end_picker, "value"))
        self.reconcile_button = button("Reconcile", self.reconcile)
        self.repair_button = button("Make repair plan", self.make_repair_plan)
        self.run_button = button("Run repair", self.run_repair, style="primary")
        self.executor_picker = widgets.Dropdown(options=executor_names(), description="Executor")
        self.executor_picker.add_class("sc-reconcile-executor")
        widgets.link((self, "executor"), (self.executor_picker, "value"))
        self.findings = widgets.HTML()
        self.findings.add_class("sc-findings")
        self.repair_preview = widgets.HTML()
        self.repair_preview.add_class("sc-repair-preview")
        self.children = [
            widgets.HTML(
                "Compares what the database says with the sources, the artifacts on disk, "
                "the index and the workers' leases. Days left empty: every day."
            ),
            widgets.HBox(
                [self.start_picker, self.end_picker, self.reconcile_button],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.message_area,
            self.findings,
            widgets.HBox(
                [self.repair_button, self.executor_picker, self.run_button],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.repair_preview,
        ]
        self.add_class("sc-reconcile")
        self.observe(self._buttons, names=["reconciliation_id", "repair_plan_id"])
        self._buttons()

    def refresh(self) -> None:
        """Show the last reconciliation again (reconcile itself runs only on request)."""
        if self.reconciliation_id is not None:
            self._load()

    @guarded("reconcile")
    def reconcile(self) -> None:
        report = service.reconcile(
            self.ctx, range_start_day=self.range_start, range_end_day=self.range_end
        )
        self.repair_plan_id = None
        self.repair_preview.value = ""
        self.reconciliation_id = report.run.id
        self.findings.value = findings_html(report)
        self.say(
            f"{report.run.findings_count} findings" if report.findings else "nothing to repair",
            "info" if report.findings else "ok",
        )

    @guarded("make repair plan")
    def make_repair_plan(self) -> None:
        try:
            view = service.plan(
                self.ctx,
                options=service.PlanOptions(
                    mode=PlanMode.repair, reconciliation_id=self.reconciliation_id
                ),
            )
        except DestructivePlan as error:  # where the choice to remove them can be made
            self.say(
                f"make repair plan refused: {error}; in Plan, “{MODE_LABELS['repair']}” with "
                f"reconciliation {self.reconciliation_id} and “{ALLOW_SHRINK}” ticked does it "
                "anyway",
                "error",
            )
            return
        self.repair_preview.value = preview_html(view)
        self.repair_plan_id = view.plan.id if view.plan.cells else None
        self.say(
            f"repair plan {view.plan.id}: {view.plan.cells} cells; Run repair applies it"
            if view.plan.cells
            else "the findings name no cells to redo (a dead lease: Resume its job in Jobs)",
            "ok" if view.plan.cells else "info",
        )

    @guarded("run repair")
    def run_repair(self) -> None:
        outcome = service.run(
            self.ctx, plan_id=self.repair_plan_id, executor=self.executor, detach=True
        )
        self.repair_plan_id = None
        if outcome.job is None:
            self.say("the repair plan has nothing left to do", "info")
            return
        self.say(f"repair job {outcome.job.job.id} started ({self.executor} executor)", "ok")
        self.started_job_id = outcome.job.job.id

    @guarded("show reconciliation")
    def _load(self) -> None:
        assert self.reconciliation_id is not None
        report = service.get_reconciliation(self.ctx, reconciliation_id=self.reconciliation_id)
        self.findings.value = findings_html(report)

    def _buttons(self, _: object = None) -> None:
        self.repair_button.disabled = self.reconciliation_id is None
        self.run_button.disabled = self.repair_plan_id is None
