"""A job's log in the dashboard: the newest rows first in sight ("showing the last 200 of
1,821"), older pages on request, filtered by level, step, source and day (the same
`service.log_tail` the CLI's `logs` pages with)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, button, fmt, guarded
from softcopy.errors import UserError
from softcopy.ingestion import service
from softcopy.ingestion.models import LogRecord
from softcopy.ingestion.states import LogLevel

LOG_PAGE = 200
ANY = "any"


def log_line(row: LogRecord) -> str:
    where = " ".join(x for x in (row.source, fmt(row.day)) if x)
    return f"{row.ts:%H:%M:%S} {row.level:<7} {row.event:<18} {where:<18} {row.message}"


def page_caption(page: service.LogPage, *, filtered: bool) -> str:
    """'showing the last 200 of 1,821', or where an older page sits among them."""
    shown, total = len(page.records), page.total
    rows = "matching rows" if filtered else "rows"
    if not shown:
        return f"no {rows}" if not total else f"no older {rows}"
    if page.older + shown == total:
        if shown == total:
            return f"showing all {total:,} {rows}"
        return f"showing the last {shown:,} of {total:,} {rows}"
    first = page.older + 1
    return f"showing {rows} {first:,} to {page.older + shown:,} of {total:,}"


class LogView(Panel):
    """A job's log rows, newest page first. `before_id` is None while the newest page is
    shown (a refresh shows new rows); Older anchors it to the page's first row."""

    job_id = traitlets.Int(None, allow_none=True)
    before_id = traitlets.Int(None, allow_none=True)
    total = traitlets.Int(0)
    older = traitlets.Int(0)  # matching rows older than the page

    def __init__(self, ctx: service.Context, *, page: int = LOG_PAGE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.page_size = page
        self._first_id: int | None = None
        self.level = widgets.Dropdown(
            options=[(ANY, ANY)] + [(lv.value, lv.value) for lv in LogLevel],
            value=ANY,
            description="Level",
        )
        self.level.add_class("sc-log-level")
        self.source = widgets.Dropdown(
            options=[ANY, *sorted(ctx.settings.sources)], value=ANY, description="Source"
        )
        self.source.add_class("sc-log-source")
        # sent on Enter or leaving the box, not per keystroke
        self.step = widgets.Text(
            value="", placeholder=ANY, description="Step #", continuous_update=False
        )
        self.step.add_class("sc-log-step")
        self.day = widgets.DatePicker(description="Day")
        self.day.add_class("sc-log-day")
        self.older_button = button("Older", self.show_older)
        self.newest_button = button("Newest", self.show_newest)
        self.caption = widgets.HTML()
        self.caption.add_class("sc-log-caption")
        self.rows = widgets.HTML()
        self.rows.add_class("sc-log-rows")
        for control in (self.level, self.source, self.step, self.day):
            control.observe(self._filters_changed, names="value")
        self.children = [
            widgets.HBox(
                [self.level, self.source, self.step, self.day], layout={"flex_flow": "row wrap"}
            ),
            widgets.HBox(
                [self.older_button, self.newest_button, self.caption],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.message_area,
            self.rows,
        ]
        self.add_class("sc-log-view")
        self.observe(self._job_changed, names="job_id")
        self._buttons()

    @property
    def filtered(self) -> bool:
        return any(
            (self.level.value != ANY, self.source.value != ANY, self.step.value, self.day.value)
        )

    def refresh(self) -> None:
        """Read the shown page again (the newest one shows rows written since)."""
        if self.job_id is not None:
            self._load()

    def show_older(self) -> None:
        if self._first_id is not None:
            self.before_id = self._first_id
            self._load()

    def show_newest(self) -> None:
        self.before_id = None
        self._load()

    @guarded("read the log")
    def _load(self) -> None:
        self.say("")
        assert self.job_id is not None
        page = service.log_tail(
            self.ctx,
            job_id=self.job_id,
            level=None if self.level.value == ANY else LogLevel(self.level.value),
            step=self._step_number(),
            source=None if self.source.value == ANY else self.source.value,
            day=self.day.value,
            before_id=self.before_id,
            limit=self.page_size,
        )
        self._first_id = page.records[0].id if page.records else None
        self.total, self.older = page.total, page.older
        self.caption.value = (
            f'<span class="sc-facts">{html.escape(page_caption(page, filtered=self.filtered))}'
            "</span>"
        )
        text = "\n".join(log_line(r) for r in page.records)
        self.rows.value = f'<pre class="sc-logs">{html.escape(text)}</pre>' if text else ""
        self._buttons()

    def _step_number(self) -> int | None:
        text = self.step.value.strip().lstrip("#")
        if not text:
            return None
        if not text.isdigit():
            raise UserError(f"step: {self.step.value!r} is not a step number")
        return int(text)

    def _filters_changed(self, _: object = None) -> None:
        self.before_id = None
        if self.job_id is not None:
            self._load()

    def _job_changed(self, _: object = None) -> None:
        self.before_id = None
        self._first_id = None
        self.rows.value = self.caption.value = ""
        self.say("")
        if self.job_id is not None:
            self._load()
        self._buttons()

    def _buttons(self) -> None:
        self.older_button.disabled = self.job_id is None or self.older == 0
        self.newest_button.disabled = self.job_id is None or self.before_id is None
