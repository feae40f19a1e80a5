"""Search that finds what people mean: the relevance floor (no noise), the query language
and its safe FTS5 form, filters, and --explain's parts of each score."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.items import MemoryItem
from softcopy.memory.query import BadQuery, Query, parse

EMBEDDER = HashingEmbedder()
D1, D2, D3 = date(2026, 1, 5), date(2026, 2, 1), date(2026, 3, 1)
DOCS = [
    ("notes", D1, "Release plan", "cut the release branch on Thursday, staging Friday"),
    ("mail", D2, "Re: release plan", "the release slipped to next week"),
    ("mail", D3, "Garden", "planted the garlic and the tulip bulbs before the frost"),
    ("chat", D2, "", "the meetings ran long today; planning poker after lunch"),
    ("chat", D3, "", "the new york office opens in the spring"),
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "index.db"
    for n, (source, day, title, text) in enumerate(DOCS):
        ts = datetime(day.year, day.month, day.day, 9, n, tzinfo=UTC)
        item = MemoryItem(f"{source}:{n}", source, ts, day, title, text, {})
        vectors = EMBEDDER.embed([f"{title}\n{text}"])
        index.replace_day(path, source=source, day=day, items=[item], vectors=vectors)
    yield path
    index.close_all()


def find(path: Path, text: str, **kw: object) -> list[index.Hit]:
    query = parse(text)
    vector = EMBEDDER.embed([query.semantic_text])[0]
    return index.search(path, query=query, query_vector=vector, floor=EMBEDDER.floor, **kw)  # type: ignore[arg-type]


def ids(hits: list[index.Hit]) -> list[str]:
    return [h.item_id for h in hits]


# -- no noise ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["xyzzy", "zzyzx florp", "the frobnicator wibbles", "qwxz*"])
def test_a_query_that_matches_nothing_gives_no_hits(path: Path, text: str) -> None:
    # before the floor, "the" (in every item) and shared trigrams gave the vector side
    # a positive cosine with everything, so such queries listed unrelated items
    assert find(path, text) == []


def test_a_vector_neighbour_under_the_floor_is_dropped_and_a_text_match_always_counts(
    path: Path,
) -> None:
    text = "garlick"  # no full-text match; its trigrams are close to "garlic"
    query = parse(text)
    vector = EMBEDDER.embed([query.semantic_text])[0]
    near = index.search(path, query=query, query_vector=vector, floor=0.0)
    assert ids(near)[0] == "mail:2" and near[0].why is not None
    cosine = near[0].why.cosine
    assert cosine is not None and near[0].why.lexical_rank is None
    assert index.search(path, query=query, query_vector=vector, floor=cosine + 1e-3) == []
    # a full-text match is kept whatever its cosine: the floor binds the vector side only
    hits = index.search(path, query=parse("garlic"), query_vector=-vector, floor=0.99)
    assert ids(hits) == ["mail:2"] and hits[0].why and hits[0].why.cosine is None


def test_common_words_alone_do_not_match_when_the_query_has_others(path: Path) -> None:
    assert parse("the frost").optional_match() == '"frost"'
    assert ids(find(path, "the frost")) == ["mail:2"]
    assert parse("the").optional_match() == '"the"'  # only common words: still looked for


# -- the query language ------------------------------------------------------------------


def test_parse_reads_words_phrases_prefixes_exclusions_and_filters() -> None:
    query = parse(
        'Release "staging  Friday" plan* -garden -"new york" source:mail '
        "since:2026-01-01 until:2026-02-01 source:chat"
    )
    assert query == Query(
        words=("release",),
        prefixes=("plan",),
        phrases=(("staging", "friday"),),
        excluded=(("garden",), ("new", "york")),
        sources=("mail", "chat"),
        since=date(2026, 1, 1),
        until=date(2026, 2, 1),
    )
    assert query.semantic_text == "release plan staging friday"
    assert query.match() == (
        '"staging friday" AND ("release" OR "plan"*) NOT ("garden" OR "new york")'
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('release "plan', 'missing its closing "'),
        ("-garden", "nothing to look for"),
        ("source:mail", "nothing to look for"),
        ("plan source:", "source: needs a value"),
        ("plan since:yesterday", "since:yesterday is not a day"),
        ("plan since:2026-03-01 until:2026-02-01", "is after until:2026-02-01"),
        ("plan -source:mail", "cannot be negated"),
    ],
)
def test_a_malformed_query_is_one_user_error(text: str, reason: str) -> None:
    with pytest.raises(BadQuery, match=reason) as caught:
        parse(text)
    assert caught.value.query == text and "\n" not in str(caught.value)


def test_a_phrase_is_required_and_binds_the_vector_side_too(path: Path) -> None:
    hits = find(path, '"release branch"')
    assert ids(hits) == ["notes:0"]
    assert ids(find(path, '"branch release"')) == []  # order matters in a phrase


def test_a_prefix_matches_the_words_it_starts(path: Path) -> None:
    assert set(ids(find(path, "plan*"))) == {"notes:0", "mail:1", "chat:3", "mail:2"}
    assert set(ids(find(path, "relea*"))) == {"notes:0", "mail:1"}
    assert ids(find(path, "tuli*")) == ["mail:2"]


def test_an_exclusion_removes_text_and_vector_hits(path: Path) -> None:
    assert "mail:1" in ids(find(path, "release"))
    hits = find(path, "release -slipped")
    assert hits and "mail:1" not in ids(hits)
    assert "chat:4" not in ids(find(path, 'office -"new york"'))


def test_source_and_day_filters_in_the_query_and_as_arguments(path: Path) -> None:
    assert {h.source for h in find(path, "release source:mail")} == {"mail"}
    assert {h.day for h in find(path, "release since:2026-02-01")} == {D2}
    assert {h.day for h in find(path, "release until:2026-01-31")} == {D1}
    assert {h.day for h in find(path, "release", since=D2, until=D2)} == {D2}
    # both given: both apply (the narrower range wins)
    assert find(path, "release since:2026-01-01", since=D3) == []


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab \"*-():^+{}NEARORANDNOT'source:since2026-01\\é\x00 ")),
        max_size=30,
    )
)
def test_any_text_is_a_user_error_or_a_match_fts5_accepts(text: str) -> None:
    """User text never reaches MATCH raw: whatever is typed, FTS5 parses what we give it."""
    try:
        query = parse(text)
    except BadQuery:
        return
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
    conn.execute("INSERT INTO t VALUES ('a b ab source since')")
    for match in (query.match(), query.required_match(), query.excluded_match()):
        if match:
            conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()


# -- explain -----------------------------------------------------------------------------


def test_each_hit_carries_its_text_and_vector_parts(path: Path) -> None:
    hits = find(path, "release plan")
    top = hits[0]
    assert top.why is not None and top.why.fused == top.score
    assert top.why.lexical_rank == 1 and top.why.bm25 is not None and top.why.bm25 < 0
    assert top.why.vector_rank is not None and top.why.cosine is not None
    expected = 1 / (index.RRF_K + top.why.lexical_rank) + 1 / (index.RRF_K + top.why.vector_rank)
    assert top.score == pytest.approx(expected)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_vectors_are_read_again_after_the_index_changes(path: Path) -> None:
    assert find(path, "kohlrabi") == []
    day = date(2026, 3, 2)
    item = MemoryItem(
        "notes:new", "notes", datetime(2026, 3, 2, tzinfo=UTC), day, "", "kohlrabi", {}
    )
    index.replace_day(
        path, source="notes", day=day, items=[item], vectors=EMBEDDER.embed(["kohlrabi"])
    )
    hits = find(path, "kohlrabi")
    assert ids(hits) == ["notes:new"] and hits[0].why and hits[0].why.vector_rank == 1


def test_vectors_of_another_width_leave_the_text_side_answering(path: Path) -> None:
    query = parse("release")
    hits = index.search(path, query=query, query_vector=np.ones(7, dtype=np.float32))
    assert hits and all(h.why and h.why.cosine is None for h in hits)


def test_the_shortlist_over_many_vectors_finds_what_exact_search_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over EXACT_LIMIT vectors the vector side scores a shortlist found in fewer
    dimensions; for a query near stored rows its best hits are (nearly all) the exact ones."""
    monkeypatch.setattr(index, "SHORTLIST", 200)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(50, 96)).astype(np.float32)
    rows = centres[rng.integers(0, 50, 5000)] + 0.6 * rng.normal(size=(5000, 96))
    matrix = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    held = index._Vectors(
        version=(0, 0),
        ids=np.arange(5000, dtype=np.int64),
        matrix=matrix,
        sources=np.full(5000, "s", dtype=object),
        days=np.zeros(5000, dtype=np.int32),
    )
    held.basis = index._principal_directions(matrix)
    held.reduced = matrix @ held.basis
    overlap = []
    for n in range(20):
        query = matrix[n * 97] + 0.3 * rng.normal(size=96).astype(np.float32)
        query /= np.linalg.norm(query)
        picked, sims = held.similarity(None, query)
        assert len(picked) == 200
        exact = np.argsort(-(matrix @ query))[:10]
        overlap.append(len(set(picked[np.argsort(-sims)[:10]]) & set(exact)) / 10)
        subset = np.arange(0, 5000, 2)
        picked, _ = held.similarity(subset, query)
        assert set(picked) <= set(subset)
    assert min(overlap) >= 0.8 and np.mean(overlap) >= 0.95, overlap


def test_the_principal_directions_are_the_samples_top_singular_vectors() -> None:
    """Made from the Gram matrix's eigenvectors (cheap), they span what the SVD's top
    REDUCED_DIM right singular vectors span, strongest first."""
    rng = np.random.default_rng(5)
    scales = np.linspace(3.0, 0.1, 96)  # a clear spectrum: every direction its own weight
    matrix = rng.normal(size=(4000, 96)) * scales @ np.linalg.qr(rng.normal(size=(96, 96)))[0]
    matrix = matrix.astype(np.float32)
    basis = index._principal_directions(matrix)
    _, _, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    top = vt[: index.REDUCED_DIM].T
    assert basis.shape == (96, index.REDUCED_DIM) and basis.dtype == np.float32
    np.testing.assert_allclose(basis @ basis.T, top @ top.T, atol=1e-3)
    np.testing.assert_allclose(np.abs(np.sum(basis[:, :5] * top[:, :5], axis=0)), 1, atol=1e-4)


def test_the_vector_sides_products_are_the_matrix_products() -> None:
    """index.matvec (numpy's own loop, not BLAS's threads) is `@`, for the layouts the
    vector side gives it: whole rows, picked rows, and the basis transposed."""
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(3000, 96)).astype(np.float32)
    basis = rng.normal(size=(96, 16)).astype(np.float32)
    vector = rng.normal(size=96).astype(np.float32)
    picked = matrix[rng.integers(0, 3000, 500)]
    for m, v in (
        (matrix, vector),
        (picked, vector),
        (basis.T, vector),
        (matrix @ basis, basis.T @ vector),
    ):
        got = index.matvec(m, v)
        assert got.dtype == np.float32 and got.shape == (len(m),)
        np.testing.assert_allclose(got, m @ v, rtol=1e-5, atol=1e-4)


def test_a_large_index_leaves_words_most_items_hold_out_of_the_text_side(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over EXACT_LIMIT items, a word in more than COMMON_SHARE of them is not looked up
    (ranking every item that holds it was most of a slow query's time); the rarest word
    of the query always stays. A small index keeps every word."""
    query = parse("release garlic")  # "release" is in 2 of the 5 items, "garlic" in 1
    with index.connect(path) as conn:
        assert index._rarer(conn, path, query) == query  # small: unchanged
        monkeypatch.setattr(index, "EXACT_LIMIT", 0)
        monkeypatch.setattr(index, "COMMON_SHARE", 0.3)
        assert index._rarer(conn, path, query).optional_match() == '"garlic"'
        both_common = parse("release the tulip*")  # tulip*: 1 item
        monkeypatch.setattr(index, "COMMON_SHARE", 0.1)
        assert index._rarer(conn, path, both_common).optional_match() == '"tulip"*'
    hits = find(path, "release garlic", parts=("text",))
    assert ids(hits) == ["mail:2"]


def test_the_reduced_rows_are_made_for_the_second_vector_search_of_a_large_index(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "EXACT_LIMIT", 2)
    monkeypatch.setattr(index, "REDUCED_DIM", 4)
    find(path, "garlic")
    with index.connect(path) as conn:
        held = index._held_vectors(conn, path)
    assert held.searched == 1 and held.reduced is None  # one exact pass for one query
    find(path, "garlic")
    assert held.searched == 2 and held.reduced is not None and held.reduced.shape == (5, 4)
