"""Export → embed → publish on a demo home: idempotency, late edits, bad input, the cache."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from softcopy.config import Settings, load_settings
from softcopy.db import get_engine
from softcopy.errors import StageFailed
from softcopy.ingestion.states import Outcome, Stage
from softcopy.memory import embed, export, index, ledger, publish, scan
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.runner import run_stages
from softcopy.memory.stage import StageContext, export_path
from softcopy.memory.tables import SourceDay


class CountingEmbedder(HashingEmbedder):
    """The real hashing embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return super().embed(texts)


@pytest.fixture
def demo(demo_home: Path) -> tuple[Settings, Engine]:
    settings = load_settings(demo_home)
    return settings, get_engine(settings.database_url)


def ingest_all(settings: Settings, engine: Engine, **kwargs: object):
    return run_stages(
        settings=settings,
        engine=engine,
        stages=list(Stage),
        sources=["notes", "chat", "mail"],
        **kwargs,  # type: ignore[arg-type]
    )


def busiest_day(engine: Engine, source: str) -> date:
    with Session(engine) as session:
        rows = session.exec(select(SourceDay).where(SourceDay.source == source)).all()
    return max(rows, key=lambda r: (r.items, r.day)).day


def test_full_ingest_publishes_every_item(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    summary = ingest_all(settings, engine)
    assert summary.ok, summary.failures
    exported = sum(r.items for r in summary.results if r.stage is Stage.export)
    assert exported > 50
    assert index.count(settings.index_path) == exported
    with Session(engine) as session:
        entries = ledger.entries(session)
    assert {e.outcome for e in entries} == {Outcome.ok}
    assert {e.done_by for e in entries} == {"cli"}


def test_redoing_a_day_is_byte_identical_and_never_duplicates(
    demo: tuple[Settings, Engine],
) -> None:
    settings, engine = demo
    ingest_all(settings, engine)
    day = busiest_day(engine, "chat")
    path = export_path(settings, "chat", day)
    before = path.read_bytes()
    rows_before = index.count(settings.index_path)
    with Session(engine) as session:
        ctx = StageContext(settings=settings, session=session)
        for stage in (export, embed, publish):
            stage.run(ctx, "chat", day)
        session.commit()
    assert path.read_bytes() == before
    assert index.count(settings.index_path) == rows_before


def test_late_edit_changes_only_that_days_digest(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    ingest_all(settings, engine)
    with Session(engine) as session:
        before = {(r.source, r.day): r.digest for r in session.exec(select(SourceDay))}
    notes = sorted((settings.source("notes").path / "Daily").rglob("*.md"))
    edited = notes[3]
    edited.write_text(edited.read_text() + "\n- a late thought about the quarterly roadmap\n")
    with Session(engine) as session:
        ctx = StageContext(settings=settings, session=session)
        ctx.source("notes")
        session.commit()
        after = {(r.source, r.day): r.digest for r in session.exec(select(SourceDay))}
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("notes", date.fromisoformat(edited.stem))}


def test_embedding_cache_skips_unchanged_items(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    run_stages(settings=settings, engine=engine, stages=[Stage.export], sources=["chat"])
    day = busiest_day(engine, "chat")
    counting = CountingEmbedder()
    with Session(engine) as session:
        ctx = StageContext(settings=settings, session=session, embedder_override=counting)
        first = embed.run(ctx, "chat", day)
        session.commit()
        assert counting.calls == first.items > 0
        embed.run(ctx, "chat", day)
        session.commit()
    assert counting.calls == first.items


def test_strict_policy_fails_the_day_naming_file_and_line(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    chat = settings.source("chat").path
    with chat.open("a") as handle:
        handle.write('{"id": "bad", "ts": "2026-03-20T10:00:00Z", "text": 5}\n')
    summary = run_stages(settings=settings, engine=engine, stages=[Stage.export], sources=["chat"])
    [failure] = summary.failures
    assert failure.day == date(2026, 3, 20) and "chat.jsonl:line" in failure.error
    with Session(engine) as session:
        entry = ledger.get(session, source="chat", day=summary.failures[0].day, stage=Stage.export)
    assert entry is not None and entry.outcome is Outcome.failed and entry.input_digest is None


def test_skip_policy_counts_bad_records_in_the_ledger(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    chat = settings.source("chat").path
    with chat.open("a") as handle:
        handle.write('{"id": "no-text", "ts": "2026-03-20T10:00:00Z"}\n')
    summary = run_stages(
        settings=settings,
        engine=engine,
        stages=[Stage.export],
        sources=["chat"],
        skip_bad_records=True,
    )
    assert summary.ok
    with Session(engine) as session:
        entry = ledger.get(session, source="chat", day=date(2026, 3, 20), stage=Stage.export)
    assert entry is not None and entry.skipped == 1
    assert any("line" in p for r in summary.results for p in r.problems)


def test_failed_attempt_keeps_the_previous_good_state(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    ingest_all(settings, engine)
    day = busiest_day(engine, "chat")
    with Session(engine) as session:
        good = ledger.get(session, source="chat", day=day, stage=Stage.export)
    assert good is not None
    chat = settings.source("chat").path
    with chat.open("a") as handle:
        handle.write(f'{{"id": "bad", "ts": "{day.isoformat()}T23:00:00", "text": 5}}\n')
    summary = run_stages(settings=settings, engine=engine, stages=[Stage.export], sources=["chat"])
    assert any(f.day == day for f in summary.failures)
    with Session(engine) as session:
        entry = ledger.get(session, source="chat", day=day, stage=Stage.export)
    assert entry is not None and entry.outcome is Outcome.failed
    assert entry.output_digest == good.output_digest
    assert export_path(settings, "chat", day).exists()


def test_publish_refuses_vectors_older_than_the_export(demo: tuple[Settings, Engine]) -> None:
    settings, engine = demo
    ingest_all(settings, engine)
    day = busiest_day(engine, "notes")
    note = next((settings.source("notes").path / "Daily").rglob(f"{day.isoformat()}.md"))
    note.write_text(note.read_text() + "\nedited\n")
    with Session(engine) as session:
        ctx = StageContext(settings=settings, session=session)
        export.run(ctx, "notes", day)
        with pytest.raises(StageFailed, match="run embed first"):
            publish.run(ctx, "notes", day)


def test_day_that_lost_all_items_is_emptied_in_the_index_only_when_allowed(
    demo: tuple[Settings, Engine],
) -> None:
    """Publish never empties a published day by surprise (issue 8): the day fails, naming
    its counts, and the index keeps it, unless shrinking is allowed."""
    settings, engine = demo
    ingest_all(settings, engine)
    with Session(engine) as session:
        single = {r.day for r in session.exec(select(SourceDay).where(SourceDay.items == 1))}
    note = next(
        p
        for p in sorted((settings.source("notes").path / "Daily").rglob("*.md"))
        if date.fromisoformat(p.stem) in single
    )
    day = date.fromisoformat(note.stem)
    note.unlink()
    published = index.day_digests(settings.index_path, "notes")
    refused = ingest_all(settings, engine)
    assert not refused.ok
    assert [(f.stage, f.source, f.day, f.shrink) for f in refused.failures] == [
        (Stage.publish, "notes", day, True)
    ]
    assert refused.failures[0].error == (
        f"publish notes {day}: would remove 1 of 1 published items (1 → 0); refused unless "
        "removing published items is allowed"
    )
    assert index.day_digests(settings.index_path, "notes") == published  # nothing removed
    summary = ingest_all(settings, engine, allow_shrink=True)
    assert summary.ok
    digests = index.day_digests(settings.index_path, "notes")
    assert ("notes", day) not in digests
    with Session(engine) as session:
        assert scan.source_days(session, "notes", day, day) == []


def test_a_record_spoiled_after_the_scan_fails_its_day_instead_of_vanishing(
    demo: tuple[Settings, Engine],
) -> None:
    """Export refreshes the scan before it reads the day's known problems: a record that
    went bad since the last scan fails its day; it is not exported as an empty day."""
    import json

    settings, engine = demo
    path = settings.home / "sources" / "chat.jsonl"
    with Session(engine) as session:
        scan.refresh(session, StageContext(settings=settings, session=session).source("chat"))
        session.commit()
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    spoiled = json.dumps({**record, "text": 5})
    lines[0] = spoiled + " " * (len(lines[0]) - len(spoiled) - 1) + "\n"
    path.write_text("".join(lines))
    day = date.fromisoformat(record["ts"][:10])
    with Session(engine) as session, pytest.raises(StageFailed) as failed:
        export.run(StageContext(settings=settings, session=session), "chat", day)
    assert "line 1" in str(failed.value) and "not a string" in str(failed.value)
