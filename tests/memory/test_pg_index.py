"""The team index in PostgreSQL (`index_url`) against the embedded SQLite index: the same
archive published through the real stages gives the same hits in the same order for the
labelled queries of bench/search_quality.py, the relevance floor keeps noise out, a
republished day replaces its rows, the CLI searches it, verify checks it, and an index
server that does not answer is one line before anything is written."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from softcopy.cli.main import main
from softcopy.config import Settings, load_settings
from softcopy.db import dispose_engines, get_engine
from softcopy.demo import build_demo
from softcopy.ingestion.service import open_context, reconcile, run, verify
from softcopy.ingestion.service.views import PlanOptions
from softcopy.ingestion.states import FindingKind, PlanMode, Stage
from softcopy.memory import index, pg_index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.indexes import open_index
from softcopy.memory.items import MemoryItem
from softcopy.memory.runner import run_stages
from softcopy.memory.search import search
from tests.memory import search_bench

PG_URL = os.environ.get("SOFTCOPY_TEST_DATABASE_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="PostgreSQL leg: set SOFTCOPY_TEST_DATABASE_URL"),
]
TODAY = date(2026, 3, 31)
DAYS = 40
# queries beside the labelled set that exercise each operator of the query language
OPERATORS = [
    '"release plan"',
    '"release plan" -budget',
    "relea* plan",
    "kub*",
    "review -incident",
    'plan -"release plan"',
    "source:notes review",
    "the",
    "budget since:2026-03-15 until:2026-03-25",
    '"quarterly budget review" servers',
]


def _schema_url() -> Iterator[str]:
    assert PG_URL
    schema = f"i_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    pg_index.close_all()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def index_url() -> Iterator[str]:
    """A PostgreSQL index in a schema of its own, dropped after the test."""
    yield from _schema_url()


def _ingest(home: Path, index_url: str | None) -> Settings:
    build_demo(home, days=DAYS, today=TODAY)
    settings = replace(load_settings(home, env={}), index_url=index_url)
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


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Settings]]:
    """The demo archive published twice through the real stages: to SQLite and to PG."""
    if not PG_URL:
        pytest.skip("PostgreSQL leg: set SOFTCOPY_TEST_DATABASE_URL")
    root = tmp_path_factory.mktemp("pg_index")
    urls = _schema_url()
    url = next(urls)
    yield _ingest(root / "sqlite", None), _ingest(root / "postgres", url)
    index.close_all()
    next(urls, None)


def _close(got: float | None, want: float | None, rel: float) -> bool:
    return got == want if want is None or got is None else got == pytest.approx(want, rel=rel)


def _keys(hits: list[index.Hit]) -> list[tuple[str, str]]:
    return [(h.source, h.item_id) for h in hits]


def test_the_same_hits_in_the_same_order_as_sqlite(both: tuple[Settings, Settings]) -> None:
    embedded, team = both
    assert open_index(team).count() == open_index(embedded).count() > 100
    assert open_index(team).day_digests() == open_index(embedded).day_digests()
    queries = [case.query for case in search_bench.load().CASES] + OPERATORS
    answered = 0
    for query in queries:
        want, got = search(embedded, query=query, k=10), search(team, query=query, k=10)
        assert _keys(got) == _keys(want), query
        for a, b in zip(want, got, strict=True):
            assert a.why and b.why
            assert (b.why.lexical_rank, b.why.vector_rank) == (
                a.why.lexical_rank,
                a.why.vector_rank,
            )
            assert _close(b.why.bm25, a.why.bm25, 1e-9), query  # FTS5's own bm25
            assert _close(b.why.cosine, a.why.cosine, 1e-6), query
            assert b.score == pytest.approx(a.score)
        answered += bool(got)
    assert answered >= 20  # the comparison is over real hits, not empty lists


def test_each_side_alone_agrees_too(both: tuple[Settings, Settings]) -> None:
    embedded, team = both
    embedder = HashingEmbedder()
    for case in search_bench.load().CASES[:12]:
        vector = embedder.embed([case.query])[0]
        for part in ("text", "vector"):
            args = {"query": case.query, "query_vector": vector, "k": 10, "parts": (part,)}
            want = open_index(embedded).search(floor=embedder.floor, **args)
            got = open_index(team).search(floor=embedder.floor, **args)
            assert _keys(got) == _keys(want), (part, case.query)


def test_the_floor_gives_nothing_for_noise(both: tuple[Settings, Settings]) -> None:
    _, team = both
    bench = search_bench.load()
    for query in [*bench.NOISE, *bench.HELD_OUT]:
        assert search(team, query=query) == [], query


def _item(n: int, day: date, title: str, body: str) -> MemoryItem:
    ts = datetime(day.year, day.month, day.day, 9, n, tzinfo=UTC)
    return MemoryItem(f"notes:{n}", "notes", ts, day, title, body, {})


def test_republishing_a_day_replaces_its_rows(index_url: str) -> None:
    team = pg_index.PgIndex(index_url)
    embedder = HashingEmbedder()
    day, other = date(2026, 3, 1), date(2026, 3, 2)

    def publish(when: date, items: list[MemoryItem]) -> None:
        texts = [f"{i.title}\n{i.text}" for i in items]
        vectors = embedder.embed(texts) if items else np.zeros((0, embedder.dim), np.float32)
        team.replace_day(source="notes", day=when, items=items, vectors=vectors)

    def found(query: str) -> list[str]:
        vector = embedder.embed([query])[0]
        hits = team.search(query=query, query_vector=vector, floor=embedder.floor)
        return [h.item_id for h in hits]

    publish(day, [_item(1, day, "Kayak", "paddled the kayak upriver"), _item(2, day, "Pie", "x")])
    publish(other, [_item(3, other, "Kayak again", "kayak lesson two")])
    assert found("kayak") == ["notes:1", "notes:3"] and found("pie") == ["notes:2"]
    publish(day, [_item(1, day, "Kayak", "sold the kayak"), _item(4, day, "Tent", "new tent")])
    assert team.count() == 3
    digests = team.day_digests("notes")
    assert digests[("notes", day)][0] == 2 and digests[("notes", other)][0] == 1
    assert found("pie") == []  # gone from the full text and from the vectors held in memory
    assert found("tent") == ["notes:4"] and found("sold") == ["notes:1"]
    assert found("paddled") == []
    publish(day, [])  # a day that no longer has items
    assert team.count() == 1 and ("notes", day) not in team.day_digests()
    assert found("kayak") == ["notes:3"]


@pytest.fixture
def team_home(
    tmp_path: Path, index_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """A home whose state and index are both in one PostgreSQL schema, as a team runs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SOFTCOPY_HOME", str(home))
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", index_url)
    monkeypatch.delenv("SOFTCOPY_TIMEZONE", raising=False)
    monkeypatch.delenv("SOFTCOPY_INDEX_URL", raising=False)
    yield _pg_home(home, index_url), index_url
    dispose_engines()


def _pg_home(home: Path, url: str) -> Path:
    build_demo(home, days=10, today=TODAY)
    config = home / "softcopy.toml"
    config.write_text(f"index_url = {json.dumps(url)}\n" + config.read_text())
    return home


def test_cli_search_verify_and_reconcile_over_the_team_index(
    team_home: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    home, index_url = team_home
    ctx = open_context(home)
    assert ctx.settings.index_shared and not (home / "index.db").exists()
    options = PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=TODAY - timedelta(days=9),
        range_end_day=TODAY,
    )
    outcome = run(ctx, options=options)
    assert outcome.job is not None and outcome.job.job.id is not None
    job_id = outcome.job.job.id
    assert not (home / "index.db").exists()  # published to PostgreSQL only
    assert main(["memory", "search", "budget review", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all("budget" in (h["title"] + h["snippet"]).lower() for h in hits[:3])
    assert verify(ctx, job_id=job_id).ok
    with psycopg.connect(index_url, autocommit=True) as conn:  # lose one published day
        source, day = conn.execute("SELECT source, day FROM search_docs LIMIT 1").fetchone()
        conn.execute("DELETE FROM search_docs WHERE source = %s AND day = %s", (source, day))
    checked = verify(ctx, job_id=job_id)
    assert not checked.ok
    assert [(p["source"], p["day"]) for p in checked.problems] == [(source, day.isoformat())]
    report = reconcile(ctx, repair=True)  # finds the lost rows as with index.db, and repairs
    assert [(f.kind, f.source, f.day) for f in report.findings] == [
        (FindingKind.missing_index_rows, source, day)
    ]
    assert report.repair_plan is not None
    repaired = run(ctx, plan_id=report.repair_plan.id)
    assert repaired.job is not None and repaired.job.job.id is not None
    assert verify(ctx, job_id=job_id).ok and verify(ctx, job_id=repaired.job.job.id).ok
    assert reconcile(ctx).findings == []


def test_an_unreachable_index_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SOFTCOPY_HOME", str(home))
    for name in ("SOFTCOPY_DATABASE_URL", "SOFTCOPY_INDEX_URL", "SOFTCOPY_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    _pg_home(home, "postgresql://postgres@127.0.0.1:9/test?connect_timeout=2")
    start = (TODAY - timedelta(days=3)).isoformat()
    argv = ["ingestion", "run", "--mode", "backfill_range", "--range-start-day", start]
    code = main([*argv, "--range-end-day", TODAY.isoformat()])
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: search index postgresql://postgres@127.0.0.1:9/test: "), err
    engine = get_engine(load_settings(home).database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingestion_job")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM ingestion_plan")).scalar() == 0
    assert not (home / "export").exists() and not (home / "index.db").exists()
    assert main(["memory", "search", "budget"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: search index postgresql://"), err


def test_index_url_must_name_postgresql(tmp_path: Path) -> None:
    home = tmp_path
    (home / "softcopy.toml").write_text('index_url = "sqlite:///elsewhere.db"\n')
    with pytest.raises(Exception, match="index URL must be postgresql"):
        load_settings(home)
    (home / "softcopy.toml").write_text("")
    assert not load_settings(home, env={}).index_shared
    shared = load_settings(home, env={"SOFTCOPY_INDEX_URL": "postgresql://u@h/db"})
    assert shared.index_shared and shared.index_url == "postgresql://u@h/db"


def test_vectors_stored_per_item(index_url: str) -> None:
    team = pg_index.PgIndex(index_url)
    day = date(2026, 3, 1)
    vectors = np.random.default_rng(3).normal(size=(2, 16)).astype(np.float32)
    team.replace_day(
        source="notes",
        day=day,
        items=[_item(1, day, "a", "b"), _item(2, day, "c", "d")],
        vectors=vectors,
    )
    with psycopg.connect(index_url, autocommit=True) as conn:
        stored = [bytes(r[0]) for r in conn.execute("SELECT vector FROM search_docs ORDER BY id")]
        kinds = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'search_docs_tsv'"
        ).fetchone()
    assert stored == [v.tobytes() for v in vectors]
    assert kinds and "gin" in kinds[0].lower()
