"""A step's days are read with one read of the source: the same items as day by day, and
for git one process for all their commits instead of one per commit."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from softcopy.config import Settings, add_source, load_settings
from softcopy.db import get_engine
from softcopy.errors import BadRecord
from softcopy.ingestion.states import Stage
from softcopy.memory import export, scan
from softcopy.memory.items import MemoryItem
from softcopy.memory.runner import run_stages
from softcopy.memory.sources import git as git_kind
from softcopy.memory.sources import open_source
from softcopy.memory.stage import StageContext
from softcopy.memory.tables import LedgerEntry, SourceDay
from tests.test_bench_real_shape import real_shape


@pytest.fixture
def archive(home: Path) -> Settings:
    """A git history with busy days (and a commit that is gone), and a JSONL chat with a
    bad line and an item whose day differs from its neighbours'."""
    shape = real_shape()
    shape.make_git(home / "repo", shape.GitShape(commits=240, days=12, span_days=30))
    chat = home / "chat.jsonl"
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    lines = [
        json.dumps(
            {"id": f"c{n}", "ts": (start + timedelta(hours=7 * n)).isoformat(), "text": f"t{n}"}
        )
        for n in range(60)
    ]
    lines.insert(17, '{"id": "bad", "ts": "2026-10-04T10:00:00+00:00"')  # malformed, day known
    chat.write_text("\n".join(lines) + "\n")
    add_source(home, name="repo", kind="git", path="repo")
    add_source(home, name="chat", kind="jsonl", path="chat.jsonl")
    return load_settings(home)


def count_git_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    real = git_kind.GitSource._git

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[args[0]] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(git_kind.GitSource, "_git", counting)
    return calls


def days_of(session: Session, source: str) -> list[date]:
    return list(session.scalars(select(SourceDay.day).where(SourceDay.source == source)))


def shown(read: dict[date, list[MemoryItem | BadRecord]]) -> dict[date, list[object]]:
    return {d: [str(x) if isinstance(x, BadRecord) else x for x in got] for d, got in read.items()}


@pytest.mark.parametrize("name", ["repo", "chat"])
def test_batch_read_gives_what_day_by_day_reads_give(archive: Settings, name: str) -> None:
    with Session(get_engine(archive.database_url)) as session:
        source = open_source(archive.source(name), archive.timezone)
        scan.refresh(session, source)
        if name == "chat":  # a line grows after the scan: the lines after it moved
            chat = archive.home / "chat.jsonl"
            chat.write_text(chat.read_text().replace('"t30"', '"t30 and more"'))
        days = sorted(days_of(session, name))
        assert len(days) >= 10
        one_by_one = {d: export.items_for_days(session, source, [d])[d] for d in days}
        together = export.items_for_days(session, source, days)
    assert shown(together) == shown(one_by_one)
    kinds = Counter(type(x).__name__ for got in together.values() for x in got)
    assert kinds["MemoryItem"] >= 30
    assert kinds["BadRecord"] == (29 if name == "chat" else 0)


def test_git_reads_all_the_days_commits_in_one_process(
    archive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(get_engine(archive.database_url)) as session:
        source = open_source(archive.source("repo"), archive.timezone)
        scan.refresh(session, source)
        days = sorted(days_of(session, "repo"))
        calls = count_git_calls(monkeypatch)
        read = export.items_for_days(session, source, days)
    assert sum(map(len, read.values())) == 240
    assert calls == {"log": 1}  # before: one `git log` per commit, 240


def test_export_reads_ahead_the_days_it_is_told_of(
    archive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner tells the stage context its days: export starts one git process per
    READ_AHEAD_DAYS days, and writes what a day-by-day export writes."""
    engine = get_engine(archive.database_url)
    calls = count_git_calls(monkeypatch)
    summary = run_stages(settings=archive, engine=engine, stages=[Stage.export], sources=["repo"])
    assert summary.ok and sum(r.items for r in summary.results) == 240
    assert calls["log"] == 1 + 1 + 1  # list the units, scan them, load all 12 days at once
    with Session(engine) as session:
        ahead = dict(session.execute(select(LedgerEntry.day, LedgerEntry.output_digest)).all())
        ctx = StageContext(settings=archive, session=session)  # told of no days ahead
        alone = {d: export.run(ctx, "repo", d).output_digest for d in sorted(ahead)}
    assert alone == ahead
    # the repository did not change: a new context does not list it again; one read per day
    assert calls["log"] == 3 + len(ahead)


def test_an_unchanged_repository_is_not_listed_again(
    archive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(archive.database_url)

    def refresh() -> scan.ScanSummary:
        with Session(engine) as session:
            summary = scan.refresh(session, open_source(archive.source("repo"), archive.timezone))
            session.commit()
        return summary

    refresh()
    calls = count_git_calls(monkeypatch)
    assert refresh().units_read == 0
    assert calls == {"show-ref": 1}  # before: a `git log` of every commit, every time
    repo = archive.home / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b"]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "new"], check=True)
    assert refresh().units_read == 1
    subprocess.run([*git, "tag", "v-new", "HEAD~3"], check=True)  # no new commit
    assert refresh().units_read == 0
    assert calls["show-ref"] == 3 and calls["log"] == 2 + 1  # listed twice, read one commit


def test_a_jobs_export_step_reads_its_days_in_one_git_process(
    archive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime tells the stage context a step's remaining days, so a job's export step
    loads all its commits with one `git log`, not one process per day."""
    from softcopy.ingestion import service
    from softcopy.ingestion.states import JobStatus, PlanMode

    ctx = service.open_context(archive.home)
    service.coverage(ctx, sources=["repo"])  # lists and scans the repository up front
    calls = count_git_calls(monkeypatch)
    options = service.PlanOptions(
        mode=PlanMode.backfill_range,
        sources=["repo"],
        stages=[Stage.export],
        range_start_day=date(2000, 1, 1),
        range_end_day=date(2100, 1, 1),
    )
    outcome = service.run(ctx, options=options, executor="inline", chunk_days=3650)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.succeeded
    assert len(outcome.job.steps) == 1 and len(outcome.job.steps[0].step.days) == 12
    assert calls["log"] == 1  # the step's 12 days in one read (the old runtime: 12)
