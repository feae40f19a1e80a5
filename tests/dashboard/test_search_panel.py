"""The dashboard's Search tab: the same search as the CLI, its errors one line in the panel,
"no matches" said, explain shown on request."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from softcopy.dashboard import Dashboard
from softcopy.dashboard.search import SearchPanel
from softcopy.ingestion import service
from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.items import MemoryItem

ITEMS = [
    ("mail", date(2026, 3, 2), "Re: release plan", "cut the <release> branch Thursday"),
    ("notes", date(2026, 3, 3), "Garden", "planted garlic before the frost"),
]


@pytest.fixture
def panel(ctx: service.Context) -> SearchPanel:
    embedder = HashingEmbedder()
    for n, (source, day, title, text) in enumerate(ITEMS):
        item = MemoryItem(
            f"{source}:{n}", source, datetime(2026, 3, 2, tzinfo=UTC), day, title, text, {}
        )
        index.replace_day(
            ctx.settings.index_path,
            source=source,
            day=day,
            items=[item],
            vectors=embedder.embed([f"{title}\n{text}"]),
        )
    return SearchPanel(ctx)


def test_the_dashboard_has_a_search_tab(ctx: service.Context) -> None:
    board = Dashboard(ctx, poll_interval=0)
    try:
        board.show_tab("Search")
        assert board.tabs.children[board.tabs.selected_index].children == (board.search,)
    finally:
        board.close()


def test_search_shows_hits_escaped_with_the_match_marked(panel: SearchPanel) -> None:
    panel.query.value = "release"
    panel.run_search()
    assert panel.message_kind == "ok" and panel.message == "1 hit for 'release'."
    assert "<mark>release</mark>" in panel.results.value
    assert "&lt;" in panel.results.value and "<release>" not in panel.results.value
    assert "bm25=" not in panel.results.value
    panel.explain.value = True
    panel.run_search()
    assert "bm25=" in panel.results.value and "cos=" in panel.results.value


def test_filters_and_no_matches(panel: SearchPanel) -> None:
    panel.query.value = "release"
    panel.sources.value = ("notes",)
    panel.run_search()
    assert panel.message == "No matches for 'release'." and panel.results.value == ""
    panel.sources.value = ()
    panel.since.value = date(2026, 3, 3)
    panel.query.value = "garlic OR release"
    panel.run_search()
    assert "Garden" in panel.results.value and "release plan" not in panel.results.value


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('release "plan', 'a phrase is missing its closing "'),
        ("plan source:fax", "unknown source 'fax'"),
    ],
)
def test_a_bad_query_is_one_line_in_the_panel(panel: SearchPanel, query: str, message: str) -> None:
    panel.query.value = query
    panel.run_search()
    assert panel.message_kind == "error" and message in panel.message
    assert "\n" not in panel.message and "Traceback" not in panel.message


def test_a_reversed_range_names_both_pickers(panel: SearchPanel) -> None:
    panel.query.value = "release"
    panel.since.value, panel.until.value = date(2026, 3, 3), date(2026, 3, 1)
    panel.run_search()
    assert panel.message_kind == "error" and "until 2026-03-01 is before since" in panel.message


def test_a_hit_opens_its_day_in_coverage(panel: SearchPanel, ctx: service.Context) -> None:
    board = Dashboard(ctx, poll_interval=0)
    try:
        board.search.query.value = "release"
        board.search.run_search()
        buttons = [b for b in board.search.day_links.children if hasattr(b, "click")]
        assert [b.description for b in buttons] == ["2026-03-02 · mail"]
        buttons[0].click()
        assert board.tabs.selected_index == 0  # Coverage
        assert board.coverage.selected_day == date(2026, 3, 2)
    finally:
        board.close()
