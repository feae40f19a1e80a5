"""The search index: atomic day replacement and hybrid search."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.items import MemoryItem, digest

EMBEDDER = HashingEmbedder()


def item(source: str, day: date, n: int, title: str, text: str) -> MemoryItem:
    ts = datetime(day.year, day.month, day.day, 9, n, tzinfo=UTC)
    return MemoryItem(f"{source}:{n}", source, ts, day, title, text, {})


def publish(path: Path, source: str, day: date, items: list[MemoryItem]) -> None:
    vectors = EMBEDDER.embed([f"{i.title}\n{i.text}" for i in items])
    index.replace_day(path, source=source, day=day, items=items, vectors=vectors)


def test_replace_day_holds_exactly_the_given_items(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    day = date(2026, 1, 5)
    first = [item("notes", day, n, f"t{n}", "standup notes") for n in range(3)]
    publish(path, "notes", day, first)
    publish(path, "notes", day, first[:1])
    publish(path, "notes", date(2026, 1, 6), first[1:2])
    digests = index.day_digests(path)
    assert digests[("notes", day)] == (1, digest([(first[0].item_id, first[0].content_hash)]))
    assert index.count(path) == 2


def test_search_finds_exact_and_near_words_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    d1, d2 = date(2026, 1, 5), date(2026, 2, 1)
    publish(path, "notes", d1, [item("notes", d1, 0, "Release plan", "cut the branch Thursday")])
    publish(path, "chat", d2, [item("chat", d2, 0, "", "the meetings ran long today")])
    publish(path, "chat", d1, [item("chat", d1, 1, "", "garlic and tulips in the garden")])

    def query(text: str, **kw: object) -> list[index.Hit]:
        return index.search(path, query=text, query_vector=EMBEDDER.embed([text])[0], **kw)  # type: ignore[arg-type]

    hits = query("release")
    assert hits[0].title == "Release plan" and hits[0].day == d1
    assert query("meeting")[0].item_id == "chat:0"  # near word: meeting ~ meetings
    # the source filter: the chat item that says "garden" is not among the hits
    assert all(h.source == "notes" for h in query("garden", sources=["notes"]))
    assert [h.source for h in query("garden")][:1] == ["chat"]  # and it is there unfiltered
    assert all(h.day >= d2 for h in query("the", since=d2))
    assert query("zzzz qqqq") == []


def test_a_failed_replacement_leaves_the_day_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    day = date(2026, 1, 5)
    publish(path, "notes", day, [item("notes", day, 0, "kept", "kept text")])
    twice = item("notes", day, 1, "x", "y")
    with pytest.raises(sqlite3.IntegrityError):  # fails after the day's rows were deleted
        publish(path, "notes", day, [twice, twice])
    assert index.day_digests(path)[("notes", day)][0] == 1
    hits = index.search(path, query="kept", query_vector=EMBEDDER.embed(["kept"])[0])
    assert hits[0].title == "kept"
