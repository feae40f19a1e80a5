"""Embedders: the zero-dependency hashing default and the `semantic` extra (all-MiniLM-L6-v2
as an int8 ONNX file from a package, on ONNX Runtime), which `make test` installs: these
tests run the real model, offline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from softcopy.config import load_settings
from softcopy.errors import ConfigError
from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder, SemanticEmbedder, get_embedder
from softcopy.memory.items import MemoryItem
from softcopy.memory.search import search

PAIRS = [
    # (text, its paraphrase, an unrelated text)
    (
        "cut the release branch Thursday, staging rollout Friday morning",
        "when do we ship the new version",
        "planted garlic and tulip bulbs before the frost",
    ),
    (
        "took the car to the mechanic, the brakes were replaced",
        "automobile repair",
        "chapter on write-ahead logging and checkpoint intervals",
    ),
    (
        "electricity was out for three hours in the storm",
        "the lights went out in bad weather",
        "two onsite interviews for the platform role",
    ),
]


@pytest.fixture(scope="module")
def semantic() -> SemanticEmbedder:
    embedder = get_embedder("semantic")
    assert isinstance(embedder, SemanticEmbedder)
    return embedder


def test_semantic_vectors_are_real_unit_rows(semantic: SemanticEmbedder) -> None:
    vectors = semantic.embed(["release plan", "", "ünïcödé 日本語 text"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[2]).max() > 0.01  # not a constant


def test_semantic_embedding_is_deterministic_and_independent_of_the_batch(
    semantic: SemanticEmbedder,
) -> None:
    texts = [p[0] for p in PAIRS] + ["a much longer text " * 40]
    batch = semantic.embed(texts)
    assert np.array_equal(batch, semantic.embed(texts))
    alone = np.vstack([semantic.embed([t]) for t in texts])
    assert np.allclose(batch, alone, atol=1e-4)  # padding in a batch changes nothing


@pytest.mark.parametrize(("text", "paraphrase", "unrelated"), PAIRS)
def test_a_paraphrase_is_nearer_than_an_unrelated_text_and_over_the_floor(
    semantic: SemanticEmbedder, text: str, paraphrase: str, unrelated: str
) -> None:
    v_text, v_para, v_other = semantic.embed([text, paraphrase, unrelated])
    assert float(v_text @ v_para) > float(v_text @ v_other) + 0.1
    assert float(v_text @ v_para) >= semantic.floor > float(v_text @ v_other)


def test_the_hashing_embedder_cannot_tell_a_paraphrase(semantic: SemanticEmbedder) -> None:
    """Why the semantic extra exists: word hashing sees no link without shared words."""
    hashing = HashingEmbedder()
    text, paraphrase, _ = PAIRS[2]
    v_text, v_para = hashing.embed([text, paraphrase])
    assert float(v_text @ v_para) < hashing.floor


def test_a_changed_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SemanticEmbedder, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="not the expected model file"):
        SemanticEmbedder()


def test_softcopy_toml_selects_the_semantic_embedder_and_search_uses_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "softcopy.toml").write_text(
        'embedder = "semantic"\n\n[sources.notes]\nkind = "notes"\npath = "notes"\n'
    )
    (home / "notes").mkdir()
    settings = load_settings(home, env={})
    embedder = get_embedder(settings.embedder)
    assert isinstance(embedder, SemanticEmbedder) and settings.embedder == "semantic"
    day = date(2026, 3, 1)
    texts = [p[0] for p in PAIRS]
    items = [
        MemoryItem(f"notes:{n}", "notes", datetime(2026, 3, 1, 9, n, tzinfo=UTC), day, "", t, {})
        for n, t in enumerate(texts)
    ]
    index.replace_day(
        settings.index_path, source="notes", day=day, items=items, vectors=embedder.embed(texts)
    )
    try:
        hits = search(settings, query="the lights went out in bad weather")
        assert [h.item_id for h in hits] == ["notes:2"]  # by meaning alone, over the floor
        assert hits[0].why and hits[0].why.lexical_rank is None and hits[0].why.cosine
        assert search(settings, query="frobnicate the wibble") == []
    finally:
        index.close_all()


def test_an_unknown_embedder_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="hashing, minilm, semantic"):
        get_embedder("word2vec")
