"""Which search index a home publishes to and searches: the embedded SQLite file
`<home>/index.db` (the default), or the team index in PostgreSQL (`index_url`)."""

from __future__ import annotations

from softcopy.config import Settings
from softcopy.memory.index import SearchIndex, SqliteIndex
from softcopy.memory.pg_index import PgIndex


def open_index(settings: Settings) -> SearchIndex:
    """The home's search index, by `settings.index_url` (opened lazily: nothing connects
    until it is used; `check()` connects)."""
    if settings.index_url:
        return PgIndex(settings.index_url)
    return SqliteIndex(settings.index_path)
