"""GET /api/ingestion/search and the dashboard's Search tab over the team index in
PostgreSQL: the same hits, marks and score parts as over the embedded index, and an index
server that does not answer is a 503 (one line) and one line in the panel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from softcopy.config import load_settings
from softcopy.dashboard.search import SearchPanel
from softcopy.db import dispose_engines, get_engine
from softcopy.ingestion import service
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.indexes import open_index
from softcopy.memory.items import MemoryItem
from tests.ingestion.test_api import fetch, jp_server_config  # noqa: F401 (fixtures)
from tests.memory.test_pg_index import PG_URL, index_url, pytestmark  # noqa: F401

pytest_plugins = ["pytest_jupyter.jupyter_server"]
ITEMS = [
    ("mail", date(2026, 3, 2), "Re: release plan", "cut the <release> branch Thursday"),
    ("notes", date(2026, 3, 3), "Release plan", "release plan draft, spring"),
    ("notes", date(2026, 3, 4), "Garden", "planted garlic before the frost"),
]
UNREACHABLE = "postgresql://postgres@127.0.0.1:9/test?connect_timeout=2"


@pytest.fixture
def ctx(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[service.Context]:
    """A home whose index is the test's PostgreSQL schema (or, parametrized "unreachable",
    a server that does not answer), its state in a SQLite file."""
    lost = getattr(request, "param", None) == "unreachable"
    url = UNREACHABLE if lost else request.getfixturevalue("index_url")
    settings = replace(load_settings(tmp_path / "home", env={}), index_url=url)
    yield service.Context(settings=settings, engine=get_engine(settings.database_url))
    dispose_engines()


@pytest.fixture
def published(ctx: service.Context) -> None:
    embedder = HashingEmbedder()
    for n, (source, day, title, text) in enumerate(ITEMS):
        ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        item = MemoryItem(f"{source}:{n}", source, ts, day, title, text, {})
        open_index(ctx.settings).replace_day(
            source=source, day=day, items=[item], vectors=embedder.embed([f"{title}\n{text}"])
        )


@pytest.mark.usefixtures("published")
async def test_the_api_searches_the_team_index(fetch: Any) -> None:  # noqa: F811
    code, body = await fetch("search", params={"q": "release plan", "k": "2"})
    assert code == 200 and [h["item_id"] for h in body["hits"]] == ["notes:1", "mail:0"]
    why = body["hits"][0]["why"]
    assert why["lexical_rank"] == 1 and why["bm25"] < 0 and why["cosine"] > 0
    code, body = await fetch("search", params={"q": "release", "until": "2026-03-02"})
    assert code == 200 and [h["item_id"] for h in body["hits"]] == ["mail:0"]
    code, body = await fetch("search", params={"q": "xyzzy plugh"})
    assert code == 200 and body["hits"] == []


@pytest.mark.parametrize("ctx", ["unreachable"], indirect=True)
async def test_an_unreachable_index_is_a_503_in_one_line(fetch: Any) -> None:  # noqa: F811
    code, body = await fetch("search", params={"q": "release"})
    assert code == 503, body
    message = body["message"] if isinstance(body, dict) else str(body)
    assert "search index postgresql://postgres@127.0.0.1:9/test" in message
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.usefixtures("published")
def test_the_search_tab_searches_the_team_index(ctx: service.Context) -> None:
    panel = SearchPanel(ctx)
    panel.query.value = "release"
    panel.run_search()
    assert panel.message_kind == "ok" and panel.message == "2 hits for 'release'."
    assert "<mark>release</mark>" in panel.results.value and "&lt;" in panel.results.value
    panel.query.value = "frost -garlic"
    panel.run_search()
    assert panel.message_kind != "error" and "no" in panel.message.lower()


@pytest.mark.parametrize("ctx", ["unreachable"], indirect=True)
def test_an_unreachable_index_is_one_line_in_the_search_tab(ctx: service.Context) -> None:
    panel = SearchPanel(ctx)
    panel.query.value = "release"
    panel.run_search()
    assert panel.message_kind == "error"
    assert "search index postgresql://postgres@127.0.0.1:9/test: " in panel.message
    assert "\n" not in panel.message
