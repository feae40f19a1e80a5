"""GET /api/ingestion/search: the CLI's search over HTTP (query language, filters, floor,
explain parts), bad input a 400 naming the field, documented in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from softcopy.api import spec as api_spec
from softcopy.ingestion import service
from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.items import MemoryItem
from tests.ingestion.test_api import fetch, jp_server_config  # noqa: F401 (fixtures)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

ITEMS = [
    ("mail", date(2026, 3, 2), "Re: release plan", "cut the release branch Thursday"),
    ("notes", date(2026, 3, 3), "Release plan", "release plan draft, spring"),
    ("notes", date(2026, 3, 4), "Garden", "planted garlic before the frost"),
]


@pytest.fixture(autouse=True)
def published(ctx: service.Context) -> None:
    embedder = HashingEmbedder()
    for n, (source, day, title, text) in enumerate(ITEMS):
        ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        item = MemoryItem(f"{source}:{n}", source, ts, day, title, text, {})
        index.replace_day(
            ctx.settings.index_path,
            source=source,
            day=day,
            items=[item],
            vectors=embedder.embed([f"{title}\n{text}"]),
        )


async def test_search_answers_hits_with_their_score_parts(fetch: Any) -> None:  # noqa: F811
    code, body = await fetch("search", params={"q": "release plan", "k": "2"})
    assert code == 200 and body["query"] == "release plan"
    assert len(body["hits"]) == 2 and {h["item_id"] for h in body["hits"]} <= {"mail:0", "notes:1"}
    why = body["hits"][0]["why"]
    assert (
        why["lexical_rank"] == 1 and why["cosine"] > 0 and why["fused"] == body["hits"][0]["score"]
    )


async def test_filters_in_fields_and_in_the_query(fetch: Any) -> None:  # noqa: F811
    code, body = await fetch("search", params={"q": "release", "source": "mail"})
    assert code == 200 and [h["item_id"] for h in body["hits"]] == ["mail:0"]
    code, body = await fetch("search", params={"q": "release since:2026-03-03"})
    assert [h["item_id"] for h in body["hits"]] == ["notes:1"]
    code, body = await fetch("search", params={"q": "release", "until": "2026-03-02"})
    assert [h["item_id"] for h in body["hits"]] == ["mail:0"]


async def test_a_query_that_matches_nothing_is_an_empty_list(fetch: Any) -> None:  # noqa: F811
    assert await fetch("search", params={"q": "xyzzy plugh"}) == (
        200,
        {"query": "xyzzy plugh", "hits": []},
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "query field 'q'"),
        ({"q": "  "}, "query field 'q'"),
        ({"q": 'release "plan'}, 'a phrase is missing its closing "'),
        ({"q": "plan", "source": "fax"}, "unknown source 'fax'"),
        ({"q": "plan", "since": "2026-02-30"}, "since"),
        ({"q": "plan", "k": "0"}, "k"),
        (
            {"q": "plan", "since": "2026-03-04", "until": "2026-03-01"},
            "until 2026-03-01 is before since",
        ),
    ],
)
async def test_bad_search_input_is_400_naming_it(
    fetch: Any,  # noqa: F811
    params: dict[str, str],
    message: str,
) -> None:
    code, body = await fetch("search", params=params)
    assert code == 400 and message in body["message"], body


def test_the_search_route_is_documented() -> None:
    operation = api_spec.PATHS["/search"]["get"]
    names = {p["name"]: p for p in operation["parameters"]}
    assert set(names) == {"q", "k", "source", "since", "until"} and names["q"]["required"]
    assert "Hit" in api_spec._model_schemas()
