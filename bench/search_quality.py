"""Search quality and latency: hand-labelled queries over the demo archive, and query
latency at 100,000 items.

Quality. The 120-day demo archive (softcopy/demo.py, a fixed `today`) is ingested twice,
once per embedder (hashing, semantic), through the real stages. Each labelled query names
the items it should find (a journal entry's title, or a templated topic's sentence), by
kind: exact words, synonyms, paraphrases, typos, a date-constrained query. Printed per
kind and mode: recall@10 (the share of the expected items, up to 10, found in the first
10 hits) and MRR (1 / rank of the first expected hit). Modes: `text` (FTS5 alone),
`hashing` and `semantic` (vectors alone, over the floor), `hybrid-hashing` (the default)
and `hybrid-semantic` (text fused with the semantic vectors).

Noise. Gibberish and off-topic queries must give no hits at all: the relevance floor of
each embedder (softcopy/memory/embedders.py) is calibrated here. `--calibrate` prints,
per embedder, the highest cosine any noise query reaches and the cosine of the best
expected item of each paraphrase/synonym/typo query.

Latency. 100,000 items over 1,000 days built from the demo's sentences (each item its own
words and numbers); the semantic index carries the vectors of the distinct sentences
moved by a small random offset each (cosine about 0.95), as distinct items on one topic
are: embedding 100k texts on this CPU would take most of an hour. Timed: `search()` end
to end (parse, embed the query, full-text and vector ranking, fusion, hits) in a warm
process, p50/p95 over the queries, and each side alone.

The same against the team index in PostgreSQL (`--index-url postgresql://…`: each index
in a schema of its own, dropped at the end); the embedded SQLite index otherwise.

    .venv/bin/python bench/search_quality.py [--calibrate] [--skip-latency] [--index-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine
from softcopy.demo import JOURNAL, TOPICS, build_demo
from softcopy.ingestion.states import Stage
from softcopy.memory import index, pg_index
from softcopy.memory.embedders import get_embedder
from softcopy.memory.indexes import open_index
from softcopy.memory.items import MemoryItem
from softcopy.memory.query import parse
from softcopy.memory.runner import run_stages
from softcopy.memory.search import search

TODAY = date(2026, 3, 31)
DAYS = 120
K = 10
LATENCY_ITEMS = 100_000
EMBEDDERS = ("hashing", "semantic")


@dataclass(frozen=True)
class Doc:
    source: str
    day: date
    item_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Case:
    kind: str
    query: str
    expect: Callable[[Doc], bool]


def title(name: str) -> Callable[[Doc], bool]:
    return lambda d: d.title == name


def topic(
    name: str, *, since: date | None = None, until: date | None = None
) -> Callable[[Doc], bool]:
    """Items about a templated topic: they hold its sentence (a note that only mentions
    the topic, "talked with Ada about release plan", is not about it)."""
    body = dict(TOPICS)[name]
    return lambda d: (
        body in d.text and (since is None or d.day >= since) and (until is None or d.day <= until)
    )


SINCE = TODAY - timedelta(days=30)
UNTIL = TODAY - timedelta(days=90)
CASES = [
    # exact words
    Case("exact", "kubernetes upgrade", title("Kubernetes upgrade")),
    Case("exact", "sourdough", title("Sourdough")),
    Case("exact", "kingfisher", title("Bird watching")),
    Case("exact", "budget review", topic("budget review")),
    Case("exact", "incident review", topic("incident review")),
    Case("exact", "solar panels quote", title("Solar panels")),
    # synonyms: the item says it with other words
    Case("synonym", "dental appointment", title("Dentist")),
    Case("synonym", "blackout", title("Power outage")),
    Case("synonym", "jogging", title("Running")),
    Case("synonym", "pay rise", title("Salary negotiation")),
    Case("synonym", "veterinarian", title("Vet visit")),
    Case("synonym", "photovoltaic roof", title("Solar panels")),
    Case("synonym", "automobile repair", title("Car trouble")),
    Case("synonym", "recruiting", topic("hiring loop")),
    # paraphrases: what a person remembers, not what they wrote
    Case("paraphrase", "when is the software going out to customers", topic("release plan")),
    Case("paraphrase", "we are spending too much on servers", topic("budget review")),
    Case("paraphrase", "a new colleague's first days at work", title("Onboarding Priya")),
    Case("paraphrase", "the lights went out in bad weather", title("Power outage")),
    Case("paraphrase", "my notebook computer stopped working", title("Laptop died")),
    Case("paraphrase", "fixing a critical flaw in the crypto library", title("Security patch")),
    Case("paraphrase", "practising a classical piece on the keyboard", title("Piano lesson")),
    Case(
        "paraphrase", "nobody has time to look at teammates' changes", title("Code review backlog")
    ),
    Case("paraphrase", "files were erased by accident and brought back", title("Data loss scare")),
    Case("paraphrase", "celebrating our marriage", title("Wedding anniversary")),
    Case("paraphrase", "being ill in bed", title("Flu")),
    Case("paraphrase", "organising a celebration for my daughter", title("Birthday party")),
    Case("paraphrase", "clients getting too many requests errors", title("API rate limits")),
    Case("paraphrase", "moving data to another database server", title("Database migration")),
    Case("paraphrase", "novel discussion group", title("Book club")),
    Case("paraphrase", "housing costs going up", title("Rent increase")),
    Case("paraphrase", "evaluating a job applicant", title("Interview feedback")),
    Case("paraphrase", "baking bread at home", title("Sourdough")),
    # typos
    Case("typo", "kubernets upgrad", title("Kubernetes upgrade")),
    Case("typo", "sourdouhg", title("Sourdough")),
    Case("typo", "dentst", title("Dentist")),
    Case("typo", "relase plan", topic("release plan")),
    Case("typo", "solar pannels", title("Solar panels")),
    # date-constrained
    Case("date", f"release plan since:{SINCE}", topic("release plan", since=SINCE)),
    Case("date", f"budget review until:{UNTIL}", topic("budget review", until=UNTIL)),
]
# queries that match nothing in the archive, by words or by meaning: no hits is right.
# NOISE calibrates the floors (--calibrate); HELD_OUT never did, so it checks them.
NOISE = [
    "xyzzy plugh",
    "qwxz vbnm kjhg",
    "zzyzx florp",
    "asdfgh",
    "quantum chromodynamics lattice",
    "medieval falconry tournament",
    "submarine sonar",
    "knitting a wool scarf pattern",
    "volcanic eruption lava",
    "ancient roman aqueducts",
    "chess grandmaster endgame",
    "jellyfish tentacles",
    "frobnicate the wibble",
    "opera singer soprano aria",
    "glacier crevasse",
    "skateboarding tricks",
]
HELD_OUT = [
    "blorptastic zinglewhump",
    "kxcd vrrp",
    "tropical rainforest canopy frogs",
    "baroque harpsichord tuning",
    "astronaut spacewalk checklist",
    "sumo wrestling ranks",
    "fermented shark delicacy",
    "lighthouse keeper logbook",
]


@contextmanager
def schema(server: str | None) -> Iterator[str | None]:
    """A PostgreSQL index URL in a new schema of `server`'s database (None: SQLite)."""
    if server is None:
        yield None
        return
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{name}"
    finally:
        pg_index.close_all()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def ingest(root: Path, embedder: str, index_url: str | None = None) -> Settings:
    home = root / embedder
    build_demo(home, days=DAYS, today=TODAY)
    settings = replace(load_settings(home, env={}), embedder=embedder, index_url=index_url)
    summary = run_stages(
        settings=settings,
        engine=get_engine(settings.database_url),
        stages=list(Stage),
        sources=sorted(settings.sources),
        start=TODAY - timedelta(days=DAYS - 1),
        end=TODAY,
    )
    assert summary.ok, summary
    return settings


def docs(settings: Settings) -> dict[tuple[str, str], Doc]:
    if settings.index_url:
        import psycopg

        with psycopg.connect(settings.index_url) as pg:
            got = pg.execute("SELECT source, day, item_id, title, text FROM search_docs")
            return {(s, i): Doc(s, d, i, t, x) for s, d, i, t, x in got.fetchall()}
    with sqlite3.connect(settings.index_path) as conn:
        rows = conn.execute("SELECT source, day, item_id, title, text FROM docs").fetchall()
    return {(s, i): Doc(s, date.fromisoformat(d), i, t, x) for s, d, i, t, x in rows}


def run_mode(settings: Settings, mode: str, query: str) -> list[index.Hit]:
    if mode.startswith("hybrid"):
        return search(settings, query=query, k=K)
    parsed = parse(query)
    embedder = get_embedder(settings.embedder)
    return open_index(settings).search(
        query=parsed,
        query_vector=embedder.embed([parsed.semantic_text])[0],
        k=K,
        floor=embedder.floor,
        parts=("text",) if mode == "text" else ("vector",),
    )


def score(hits: list[index.Hit], expected: set[tuple[str, str]]) -> tuple[float, float]:
    found = [(h.source, h.item_id) in expected for h in hits[:K]]
    recall = sum(found) / min(K, len(expected))
    first = next((rank for rank, ok in enumerate(found, 1) if ok), None)
    return recall, (1.0 / first if first else 0.0)


def quality(homes: dict[str, Settings]) -> None:
    modes = {
        "text": homes["hashing"],
        "hashing": homes["hashing"],
        "semantic": homes["semantic"],
        "hybrid-hashing": homes["hashing"],
        "hybrid-semantic": homes["semantic"],
    }
    all_docs = docs(homes["hashing"])
    kinds = list(dict.fromkeys(c.kind for c in CASES))
    table: dict[tuple[str, str], list[tuple[float, float]]] = {}
    misses: dict[str, list[str]] = {}
    for case in CASES:
        expected = {key for key, doc in all_docs.items() if case.expect(doc)}
        assert expected, f"no demo item is labelled for {case.query!r}"
        for mode, settings in modes.items():
            r, m = score(run_mode(settings, mode, case.query), expected)
            table.setdefault((mode, case.kind), []).append((r, m))
            if mode == "hybrid-semantic" and r < 1.0:
                misses.setdefault(mode, []).append(f"{case.query!r} recall {r:.2f}")
    print(f"\nrecall@{K} / MRR over {len(CASES)} labelled queries ({len(all_docs)} items)")
    header = f"{'mode':<16}" + "".join(f"{k + ' (' + str(_n(k)) + ')':>22}" for k in kinds)
    print(header)
    for mode in modes:
        cells = []
        for kind in kinds:
            rows = table[(mode, kind)]
            recall = statistics.fmean(r for r, _ in rows)
            mrr = statistics.fmean(m for _, m in rows)
            cells.append(f"{recall:.2f} / {mrr:.2f}".rjust(22))
        print(f"{mode:<16}" + "".join(cells))
    for mode, lines in misses.items():
        print(f"{mode} below full recall: " + "; ".join(lines))
    for label, noise in (("calibration", NOISE), ("held-out", HELD_OUT)):
        print(f"\nnoise ({label}): hits for {len(noise)} queries that match nothing (want 0)")
        for mode, settings in modes.items():
            counts = [len(run_mode(settings, mode, q)) for q in noise]
            print(f"{mode:<16} {sum(counts)} hits {counts}")


def _n(kind: str) -> int:
    return sum(1 for c in CASES if c.kind == kind)


def calibrate(homes: dict[str, Settings]) -> None:
    """The evidence for each embedder's floor: noise cosines must stay under it, the
    expected items of meaning queries should stay over it."""
    all_docs = docs(homes["hashing"])
    for name in homes:
        embedder = get_embedder(name)
        keys = list(all_docs)
        vectors = embedder.embed([f"{all_docs[k].title}\n{all_docs[k].text}" for k in keys])
        noise = max(
            float((vectors @ embedder.embed([parse(q).semantic_text])[0]).max()) for q in NOISE
        )
        kept = []
        for case in CASES:
            if case.kind not in {"synonym", "paraphrase", "typo"}:
                continue
            rows = [i for i, k in enumerate(keys) if case.expect(all_docs[k])]
            sims = vectors[rows] @ embedder.embed([parse(case.query).semantic_text])[0]
            kept.append((float(sims.max()), case.query))
        kept.sort()
        print(f"\n{name}: floor now {embedder.floor}; highest noise cosine {noise:.3f}")
        print("  best expected cosine per meaning query, lowest first:")
        for cosine, query in kept:
            mark = "" if cosine >= embedder.floor else "   (under the floor)"
            print(f"    {cosine:.3f}  {query}{mark}")


def latency(server: str | None = None) -> None:
    rng = random.Random(13)
    noise = np.random.default_rng(13)
    sentences = [f"{t}: {b}" for t, b in TOPICS] + [f"{t}: {b}" for _, t, b in JOURNAL]
    words = sorted({w for s in sentences for w in s.lower().split() if w.isalpha()})
    start = TODAY - timedelta(days=999)
    queries = [c.query for c in CASES]
    for name in EMBEDDERS:
        embedder = get_embedder(name)
        base = embedder.embed(sentences)
        spread = 0.3 / base.shape[1] ** 0.5  # cosine about 0.95 to the sentence's vector
        with tempfile.TemporaryDirectory() as tmp, schema(server) as index_url:
            path = Path(tmp) / "index.db"
            settings = replace(
                load_settings(Path(tmp) / "home", env={}), embedder=name, index_url=index_url
            )
            settings = replace(settings, home=Path(tmp))  # index_path -> tmp/index.db
            assert settings.index_path == path, settings.index_path
            target = open_index(settings)
            began = time.perf_counter()
            for d in range(1000):
                day = start + timedelta(days=d)
                items, rows = [], []
                for n in range(LATENCY_ITEMS // 1000):
                    which = rng.randrange(len(sentences))
                    extra = " ".join(rng.sample(words, 4))
                    ts = datetime(day.year, day.month, day.day, 8, n % 60, tzinfo=UTC)
                    text = f"{sentences[which]} ({extra}, #{d}-{n})"
                    items.append(MemoryItem(f"bench:{d}:{n}", "bench", ts, day, "", text, {}))
                    rows.append(which)
                # distinct items on one topic: the sentence's vector moved a little
                vectors = base[rows] + noise.normal(scale=spread, size=(len(rows), base.shape[1]))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                target.replace_day(
                    source="bench", day=day, items=items, vectors=vectors.astype(np.float32)
                )
            built = time.perf_counter() - began
            index.close_all()
            pg_index.close_all()
            began = time.perf_counter()
            search(settings, query="release plan", k=K)
            cold = time.perf_counter() - began
            began = time.perf_counter()
            search(settings, query="budget review", k=K)
            second = time.perf_counter() - began
            timings: dict[str, list[float]] = {"search": [], "text": [], "vector": []}
            for _ in range(3):
                for q in queries:
                    began = time.perf_counter()
                    search(settings, query=q, k=K)
                    timings["search"].append(time.perf_counter() - began)
                    for part in ("text", "vector"):  # each side alone, the query embedded
                        began = time.perf_counter()
                        run_mode(settings, part if part == "text" else name, q)
                        timings[part].append(time.perf_counter() - began)
            index.close_all()
        p50, p95 = _percentiles(timings["search"])
        print(
            f"{name:<10} {LATENCY_ITEMS:,} items (built in {built:.0f} s): first query "
            f"{cold * 1000:.0f} ms (reads the vectors), second {second * 1000:.0f} ms (makes "
            f"the shortlist's reduced rows), then p50 {p50:.1f} ms, p95 {p95:.1f} ms over "
            f"{len(timings['search'])} queries"
        )
        for part in ("text", "vector"):
            p50, p95 = _percentiles(timings[part])
            print(f"{'':<10} {part} side alone: p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.95)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="print the floors' evidence")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--index-url", help="a postgresql:// database for the team index")
    args = parser.parse_args()
    shown = pg_index.PgIndex(args.index_url).where if args.index_url else None
    print(f"index: PostgreSQL {shown}" if shown else "index: SQLite FTS5 (embedded)")
    if not args.skip_quality:
        with (
            tempfile.TemporaryDirectory() as tmp,
            schema(args.index_url) as hashing_url,
            schema(args.index_url) as semantic_url,
        ):
            began = time.perf_counter()
            urls = {"hashing": hashing_url, "semantic": semantic_url}
            homes = {name: ingest(Path(tmp), name, urls[name]) for name in EMBEDDERS}
            print(f"ingested the {DAYS}-day demo twice in {time.perf_counter() - began:.0f} s")
            if args.calibrate:
                calibrate(homes)
            quality(homes)
            index.close_all()
    if not args.skip_latency:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nquery latency, search() end to end, {LATENCY_ITEMS:,} items (load {load})")
        latency(args.index_url)


if __name__ == "__main__":
    main()
