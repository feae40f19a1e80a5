"""A job's steps in the dashboard: failed and running steps first, then the rest in step
order, a page at a time; a step's executed notebook is rendered as HTML in the page."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, badge, button, day_span, html_table
from softcopy.ingestion import service
from softcopy.ingestion.models import JobStep
from softcopy.ingestion.states import StepStatus
from softcopy.views.timeline import duration, plural

STEP_PAGE = 50
FIRST = {StepStatus.failed: 0, StepStatus.running: 1}  # shown before every other step


def server_base_url() -> str:
    """The server's base URL as Voilà tells the kernel (its request path), else '/'."""
    path = os.environ.get("SCRIPT_NAME", "")
    return path.split("voila/", 1)[0] if "voila/" in path else "/"


def notebook_url(job_id: int, step_id: int) -> str:
    """The step's executed notebook rendered as HTML by the ingestion API (the server has
    nbconvert loaded already; this kernel would take seconds to import it)."""
    return f"{server_base_url()}api/ingestion/jobs/{job_id}/steps/{step_id}/notebook?format=html"


def ordered(steps: Sequence[service.StepView]) -> list[service.StepView]:
    """Failed steps, then running ones, then the rest; each group in step order."""
    return sorted(steps, key=lambda s: (FIRST.get(s.step.status, 2), s.step.ordinal))


def step_seconds(step: JobStep, now: datetime) -> float | None:
    if step.started_at is None:
        return None
    end = step.finished_at or (now if step.status is StepStatus.running else None)
    if end is None:
        return None
    return max((_utc(end) - _utc(step.started_at)).total_seconds(), 0.0)


def step_label(step: JobStep) -> str:
    return f"#{step.ordinal} {step.stage} {step.source} {day_span(step.days)}"


class StepsView(Panel):
    """The steps of the shown job, `page` (from 0) of them at a time."""

    page = traitlets.Int(0)
    pages = traitlets.Int(1)
    notebook_step = traitlets.Int(None, allow_none=True)  # the step whose notebook is shown

    def __init__(self, ctx: service.Context, *, page_size: int = STEP_PAGE, **kwargs: Any):
        super().__init__(**kwargs)
        self.ctx = ctx
        self.page_size = page_size
        self._view: service.JobView | None = None
        self.caption = widgets.HTML()
        self.caption.add_class("sc-steps-caption")
        self.previous_button = button("Previous steps", self.previous)
        self.next_button = button("Next steps", self.next)
        self.table = widgets.HTML()
        self.table.add_class("sc-steps")
        self.notebook_choice = widgets.Dropdown(description="Notebook", options=[])
        self.notebook_choice.add_class("sc-notebook-choice")
        self.show_button = button("Show notebook", self.show_notebook)
        self.hide_button = button("Hide notebook", self.hide_notebook)
        self.notebook = widgets.HTML()
        self.notebook.add_class("sc-notebook")
        self.notebook_row = widgets.HBox(
            [self.notebook_choice, self.show_button, self.hide_button],
            layout={"flex_flow": "row wrap", "display": "none"},
        )
        self.children = [
            widgets.HBox(
                [self.previous_button, self.next_button, self.caption],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.table,
            self.notebook_row,
            self.message_area,
            self.notebook,
        ]
        self.add_class("sc-steps-view")
        self.observe(lambda _: self._draw(), names="page")
        self._buttons()

    def show(self, view: service.JobView) -> None:
        """Draw the steps of `view` (the same page, unless another job is shown)."""
        if self._view is None or self._view.job.id != view.job.id:
            self.page = 0
            self.hide_notebook()
            self.say("")
        self._view = view
        self._draw()

    def clear(self) -> None:
        self._view = None
        self.table.value = self.caption.value = ""
        self.hide_notebook()
        self.notebook_row.layout.display = "none"
        self._buttons()

    def previous(self) -> None:
        self.page = max(self.page - 1, 0)

    def next(self) -> None:
        self.page = min(self.page + 1, self.pages - 1)

    def show_notebook(self) -> None:
        """The chosen step's notebook as a page inside this one: its own document (nbconvert's
        styles), sandboxed (no script of it runs, nothing of it reaches the dashboard)."""
        step_id = self.notebook_choice.value
        if self._view is None or self._view.job.id is None or step_id is None:
            return
        url = notebook_url(self._view.job.id, step_id)
        self.notebook.value = (
            f'<div class="sc-facts">notebook of step {self._ordinal(step_id)}</div>'
            f'<iframe class="sc-notebook-frame" sandbox="" src="{html.escape(url)}" '
            'style="width:100%;height:560px;border:1px solid #d0d7de"></iframe>'
        )
        self.notebook_step = step_id

    def hide_notebook(self) -> None:
        self.notebook.value = ""
        self.notebook_step = None

    def _ordinal(self, step_id: int) -> int | str:
        steps = self._view.steps if self._view else []
        return next((s.step.ordinal for s in steps if s.step.id == step_id), step_id)

    def _draw(self) -> None:
        view = self._view
        if view is None:
            return
        steps = ordered(view.steps)
        self.pages = max((len(steps) + self.page_size - 1) // self.page_size, 1)
        if self.page >= self.pages:
            self.page = self.pages - 1  # observed: draws again
            return
        first = self.page * self.page_size
        shown = steps[first : first + self.page_size]
        now = self.ctx.clock()
        failed = sum(1 for s in steps if s.step.status is StepStatus.failed)
        running = sum(1 for s in steps if s.step.status is StepStatus.running)
        ahead = [plural(n, w) for n, w in ((failed, "failed step"), (running, "running step"))]
        ahead_text = " and ".join(a for a, n in zip(ahead, (failed, running), strict=True) if n)
        caption = (
            f"steps {first + 1:,} to {first + len(shown):,} of {len(steps):,}"
            if len(steps) > len(shown)
            else f"{plural(len(steps), 'step')}"
        )
        if ahead_text:
            caption += f" · {ahead_text} first"
        self.caption.value = f'<span class="sc-facts">{html.escape(caption)}</span>'
        self.table.value = html_table(
            ["#", "source", "stage", "days", "cells", "status", "attempts", "took", "error"],
            [
                (
                    s.step.ordinal,
                    s.step.source,
                    s.step.stage,
                    day_span(s.step.days),
                    f"{s.days_done}/{len(s.step.days)}",
                    badge(s.step.status),
                    s.step.attempts,
                    _took(step_seconds(s.step, now)),
                    s.step.error or "",
                )
                for s in shown
            ],
            raw=(5,),
        )
        notebooks = [(step_label(s.step), s.step.id) for s in shown if s.step.artifact]
        if [v for _, v in notebooks] != [v for _, v in self.notebook_choice.options]:
            chosen = self.notebook_choice.value
            self.notebook_choice.options = notebooks
            ids = [v for _, v in notebooks]
            self.notebook_choice.value = chosen if chosen in ids else (ids[0] if ids else None)
        self.notebook_row.layout.display = "flex" if notebooks else "none"
        self._buttons()

    def _buttons(self) -> None:
        self.previous_button.disabled = self._view is None or self.page == 0
        self.next_button.disabled = self._view is None or self.page >= self.pages - 1


def _took(seconds: float | None) -> str:
    return "" if seconds is None else duration(seconds)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
