"""search(): embed the query with the configured embedder, ask the index."""

from __future__ import annotations

from datetime import date

from softcopy.config import Settings
from softcopy.memory import index
from softcopy.memory.embedders import get_embedder


def search(
    settings: Settings, *, query: str, k: int = 10, sources: list[str], since: date | None
) -> list[index.Hit]:
    vector = get_embedder(settings.embedder).embed([query])[0]
    return index.search(
        settings.index_path, query=query, query_vector=vector, k=k, sources=sources, since=since
    )
