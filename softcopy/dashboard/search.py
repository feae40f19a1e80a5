"""The search panel: the published memory, queried as `softcopy memory search` does (the same
query language, filters, relevance floor and explain)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy import limits
from softcopy.dashboard.base import Panel, button, guarded, html_table
from softcopy.ingestion import service
from softcopy.memory.index import Hit
from softcopy.memory.search import search

HELP = (
    'Words rank items holding any of them; <code>"a phrase"</code> is required; '
    "<code>relea*</code> matches word starts; <code>-word</code> leaves items out; "
    "<code>source:mail</code>, <code>since:2026-01-01</code>, <code>until:…</code> filter. "
    "A query that matches nothing, by words or meaning, gives no hits."
)


def hits_html(hits: list[Hit], *, explain: bool) -> str:
    columns = ["day", "source", "title", "snippet"]
    rows: list[list[object]] = []
    for hit in hits:
        snippet = html.escape(hit.snippet).replace("[", "<mark>").replace("]", "</mark>")
        row: list[object] = [hit.day, hit.source, hit.title, snippet]
        if explain and hit.why is not None:
            why = hit.why
            row += [
                f"{why.fused:.4f}",
                "" if why.lexical_rank is None else f"#{why.lexical_rank} bm25={why.bm25:.2f}",
                "" if why.vector_rank is None else f"#{why.vector_rank} cos={why.cosine:.3f}",
            ]
        rows.append(row)
    if explain:
        columns += ["score", "text", "vector"]
    return html_table(columns, rows, raw=(3,))


class SearchPanel(Panel):
    """A query form and its hits; a hit's day button asks the dashboard to open that day in
    coverage (`wanted_day`: (day, source))."""

    wanted_day = traitlets.Tuple(allow_none=True, default_value=None)

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.query = widgets.Text(placeholder='release plan, "cache expired" -garden')
        self.query.add_class("sc-search-query")
        self.sources = widgets.SelectMultiple(
            options=sorted(ctx.settings.sources), description="Sources", rows=3
        )
        self.since = widgets.DatePicker(description="From")
        self.until = widgets.DatePicker(description="To")
        self.k = widgets.BoundedIntText(
            value=10,
            min=limits.SEARCH_HITS.minimum,
            max=limits.SEARCH_HITS.maximum,
            description="Hits",
        )
        self.explain = widgets.Checkbox(description="Explain scores", indent=False)
        self.search_button = button("Search", self.run_search, style="primary")
        self.results = widgets.HTML()
        self.results.add_class("sc-search-results")
        self.day_links = widgets.HBox()  # a button per hit: its day in coverage
        self.day_links.add_class("sc-row")
        self.day_links.add_class("sc-search-days")
        self.children = [
            widgets.HTML(HELP),
            widgets.HBox([self.query, self.search_button]),
            widgets.HBox([self.sources, widgets.VBox([self.since, self.until]), self.k]),
            self.explain,
            self.message_area,
            self.day_links,
            self.results,
        ]
        self.add_class("sc-search")

    @guarded("Search")
    def run_search(self) -> None:
        self.results.value = ""
        self.day_links.children = []
        text = self.query.value
        if not text.strip():
            self.say("Type what to look for.", "info")
            return
        hits = search(
            self.ctx.settings,
            query=text,
            k=self.k.value,
            sources=list(self.sources.value),
            since=self.since.value,
            until=self.until.value,
        )
        if not hits:
            self.say(f"No matches for {text!r}.", "info")
            return
        self.say(f"{len(hits)} hit{'s' if len(hits) != 1 else ''} for {text!r}.", "ok")
        self.results.value = hits_html(hits, explain=self.explain.value)
        self.day_links.children = [widgets.HTML("open a hit's day in coverage:")] + [
            self._day_button(hit) for hit in hits
        ]

    def _day_button(self, hit: Hit) -> widgets.Button:
        made = widgets.Button(
            description=f"{hit.day} · {hit.source}",
            tooltip=f"{hit.title}: show {hit.day} in Coverage",
            layout={"width": "auto"},
        )
        made.add_class("sc-btn-hit-day")
        made.on_click(lambda _: self.open_day(hit.day, hit.source))
        return made

    def open_day(self, day: Any, source: str) -> None:
        self.wanted_day = None  # the same hit twice is still a change
        self.wanted_day = (day, source)
