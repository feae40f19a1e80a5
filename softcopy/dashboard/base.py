"""What every dashboard panel shares: a message area that turns service errors into one
readable line (never a traceback), and small HTML helpers for tables and badges."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from functools import wraps
from typing import Any, ParamSpec

import ipywidgets as widgets
import traitlets

from softcopy.errors import FieldError, SoftcopyError
from softcopy.report import fmt

log = logging.getLogger(__name__)
P = ParamSpec("P")

BADGE_COLOURS = {
    "succeeded": "#1a7f37",
    "running": "#0969da",
    "queued": "#6e7781",
    "cancelling": "#9a6700",
    "cancelled": "#9a6700",
    "failed": "#cf222e",
    "interrupted": "#bc4c00",
    "pending": "#6e7781",
    "skipped": "#6e7781",
}
# How this face names a core error's fields: by what the forms call them.
FIELD_LABELS = {
    "range_start_day": "“From”",
    "range_end_day": "“To”",
    "lookback_days": "“Lookback days”",
    "reconciliation_id": "“Reconciliation”",
    "sources": "“Sources”",
    "stages": "“Stages”",
    "k": "“Hits”",
    "limit": "“Hits”",
}
# Plan modes as the forms name them (the core's values are identifiers).
MODE_LABELS = {
    "catch_up_recent": "Catch up recent days",
    "backfill_range": "Backfill a range",
    "repair": "Repair reconcile findings",
}


def human(text: str) -> str:
    """A core sentence with the raw mode names it may hold replaced by their labels."""
    for raw, label in MODE_LABELS.items():
        text = text.replace(raw, f"“{label}”")
    return text


def describe(error: SoftcopyError) -> str:
    """A core error worded for the dashboard: fields by their form labels."""
    if isinstance(error, FieldError):
        return human(error.worded(lambda f: FIELD_LABELS.get(f, f.replace("_", " "))))
    return human(str(error))


class Panel(widgets.VBox):
    """A dashboard section: its own controls above a message line that holds the last
    outcome or error."""

    message = traitlets.Unicode("")
    message_kind = traitlets.Unicode("info")  # info | ok | error

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message_area = widgets.HTML()
        self.message_area.add_class("sc-message")
        self.observe(self._show_message, names=["message", "message_kind"])

    def say(self, text: str, kind: str = "info") -> None:
        self.message_kind = kind
        self.message = text

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Run a service call; a failure becomes the panel's message instead of a traceback."""
        try:
            yield
        except SoftcopyError as error:
            self.say(f"{doing} failed: {describe(error)}", "error")
        except Exception as error:  # a bug, not a user error: still no traceback in the page
            log.exception("dashboard: %s failed", doing)
            self.say(f"{doing} failed unexpectedly: {type(error).__name__}: {error}", "error")

    def _show_message(self, _: object = None) -> None:
        if not self.message:
            self.message_area.value = ""
            return
        self.message_area.value = (
            f'<div class="sc-msg sc-{self.message_kind}">{html.escape(self.message)}</div>'
        )


def guarded(doing: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Decorate a Panel method (a button callback) so service errors show in the panel."""

    def wrap(method: Callable[P, None]) -> Callable[P, None]:
        @wraps(method)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            panel = args[0]
            assert isinstance(panel, Panel)
            with panel.guard(doing):
                method(*args, **kwargs)

        return run

    return wrap


def button(label: str, on_click: Callable[[], None], *, style: str = "") -> Any:
    """A button calling `on_click()`, with a CSS class named after its label (for tests)."""
    made = widgets.Button(description=label, button_style=style)
    made.on_click(lambda _: on_click())
    made.add_class(f"sc-btn-{label.lower().replace(' ', '-')}")
    return made


def badge(status: object) -> str:
    text = fmt(status)
    colour = BADGE_COLOURS.get(text, "#6e7781")
    return f'<span class="sc-badge" style="background:{colour}">{html.escape(text)}</span>'


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    limit: int | None = None,
    raw: Sequence[int] = (),
    css: str = "sc-table",
) -> str:
    """An HTML table; cells are escaped except the column indexes in `raw` (badges, links)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    hidden = 0
    for row in rows:
        if limit is not None and len(body) >= limit:
            hidden += 1
            continue
        tds = "".join(
            f"<td>{v if i in raw else html.escape(fmt(v))}</td>" for i, v in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    more = f'<div class="sc-more">… and {hidden} more</div>' if hidden else ""
    if not body:
        return '<div class="sc-empty">(none)</div>'
    rows_html = "".join(body)
    table = f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>'
    return table + more


def day_span(days: Sequence[date] | Sequence[str]) -> str:
    """'2026-03-01 … 2026-03-07 (7 days)' for a step's or a chunk's days."""
    if not days:
        return ""
    first, last = fmt(days[0]), fmt(days[-1])
    if first == last:
        return first
    return f"{first} … {last} ({len(days)} days)"
