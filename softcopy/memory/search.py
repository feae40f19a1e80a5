"""search(): parse the query once, embed its words with the configured embedder, ask the
index with that embedder's relevance floor."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from softcopy.config import Settings
from softcopy.errors import ReversedRange
from softcopy.memory import index
from softcopy.memory.embedders import get_embedder
from softcopy.memory.indexes import open_index
from softcopy.memory.query import Query, parse


def search(
    settings: Settings,
    *,
    query: str | Query,
    k: int = 10,
    sources: Iterable[str] = (),
    since: date | None = None,
    until: date | None = None,
) -> list[index.Hit]:
    """The best `k` hits for `query` (the query language of softcopy.memory.query), none
    when nothing matches. Filters given here and in the query both apply."""
    parsed = parse(query) if isinstance(query, str) else query
    ReversedRange.check(since, until, ("since", "until"))
    sources = list(sources)
    for name in [*sources, *parsed.sources]:
        settings.source(name)  # an unknown name is an UnknownSource error, not zero hits
    embedder = get_embedder(settings.embedder)
    vector = embedder.embed([parsed.semantic_text])[0]
    return open_index(settings).search(
        query=parsed,
        query_vector=vector,
        k=k,
        sources=sources,
        since=since,
        until=until,
        floor=embedder.floor,
    )
