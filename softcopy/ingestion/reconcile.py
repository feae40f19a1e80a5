"""Reconcile: compare persisted state with the world — sources (drift, late data),
artifacts (deleted, corrupted), the index (missing or orphan rows) and jobs (dead leases).
Findings are persisted; a repair plan can be made from them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select
from sqlmodel import Session

from softcopy.config import Settings
from softcopy.db import within
from softcopy.ingestion import coverage, jobs, leases
from softcopy.ingestion.models import ReconciliationFinding, ReconciliationRun
from softcopy.ingestion.states import FindingKind, Stage
from softcopy.memory import scan
from softcopy.memory.artifacts import (
    artifacts,
    export_key,
    meant_for,
    stage_folder,
    stage_key,
)
from softcopy.memory.items import EMPTY_DIGEST
from softcopy.memory.sources import open_source
from softcopy.memory.tables import LedgerEntry, SourceDay, SourceItem


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    detail: str
    source: str | None = None
    day: date | None = None
    stage: Stage | None = None
    job_id: int | None = None


def reconcile(
    session: Session,
    *,
    settings: Settings,
    sources: list[str],
    start: date | None,
    end: date | None,
    now: datetime,
) -> tuple[ReconciliationRun, list[Finding]]:
    findings = [
        Finding(
            FindingKind.dead_lease,
            f"job {job_id}'s worker is gone (no heartbeat, or no process): ended; "
            f"resuming job {job_id} continues it",
            job_id=job_id,
        )
        for job_id in jobs.expire_leases(session, now=now, timeout=settings.lease_timeout)
    ]
    findings += [
        Finding(
            FindingKind.unclaimed_job,
            f"job {job.id} is queued, {leases.describe_wait(waited)}: its worker never started "
            "or died first; any worker runs it, a new run of its cells takes them over",
            job_id=job.id,
        )
        for job, waited in jobs.unclaimed_jobs(session, now=now, timeout=settings.lease_timeout)
    ]
    for source in sources:
        scan.refresh(session, open_source(settings.source(source), settings.timezone))
        findings += _source_findings(session, settings, source, start, end)
    findings += _future_findings(session, settings, sources, start, end, now)
    findings += _problem_findings(session, sources, start, end)
    findings += _leftover_findings(settings, sources, start, end, now)
    run = ReconciliationRun(
        created_at=now,
        sources=sources,
        range_start=start,
        range_end=end,
        findings_count=len(findings),
        drift=any(f.kind is FindingKind.source_drift for f in findings),
    )
    session.add(run)
    session.flush()
    if findings:
        session.execute(
            insert(ReconciliationFinding.__table__),
            [
                {
                    "run_id": run.id,
                    "kind": f.kind,
                    "source": f.source,
                    "day": f.day,
                    "stage": f.stage,
                    "job_id": f.job_id,
                    "detail": f.detail,
                }
                for f in findings
            ],
        )
    return run, findings


def findings_of(session: Session, run_id: int) -> list[ReconciliationFinding]:
    return list(
        session.scalars(
            select(ReconciliationFinding)
            .where(ReconciliationFinding.run_id == run_id)
            .order_by(ReconciliationFinding.id)
        )
    )


def _source_findings(
    session: Session, settings: Settings, source: str, start: date | None, end: date | None
) -> list[Finding]:
    entries: dict[date, dict[Stage, LedgerEntry]] = defaultdict(dict)
    for entry in session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.source == source, *within(LedgerEntry.day, start, end)
        )
    ):
        entries[entry.day][entry.stage] = entry
    digests = {
        d.day: d.digest
        for d in session.scalars(
            select(SourceDay).where(SourceDay.source == source, *within(SourceDay.day, start, end))
        )
    }
    from softcopy.memory.indexes import open_index  # numpy: not for reading findings

    indexed = {
        day: value
        for (_, day), value in open_index(settings).day_digests(source).items()
        if (not start or day >= start) and (not end or day <= end)
    }
    findings: list[Finding] = []
    for day, stages in sorted(entries.items()):
        findings += _artifact_findings(settings, source, day, stages)
        published = stages.get(Stage.publish)
        exported = stages.get(Stage.export)
        if published is None or published.output_digest is None:
            continue
        if exported is not None and exported.input_digest not in (
            None,
            digests.get(day, EMPTY_DIGEST),
        ):
            findings.append(
                Finding(
                    FindingKind.source_drift,
                    _drift(session, settings, source, day),
                    source,
                    day,
                    Stage.export,
                )
            )
        rows, found = indexed.get(day, (0, None))
        if rows == 0 and published.items > 0:
            findings.append(
                Finding(
                    FindingKind.missing_index_rows,
                    f"published {published.items} items; the index has none",
                    source,
                    day,
                    Stage.publish,
                )
            )
        elif rows and found != published.output_digest:
            findings.append(
                Finding(
                    FindingKind.index_mismatch,
                    f"the index holds {rows} items, other than the {published.items} published",
                    source,
                    day,
                    Stage.publish,
                )
            )
    for day, (rows, _) in sorted(indexed.items()):
        published = entries.get(day, {}).get(Stage.publish)
        if published is None or published.output_digest is None:
            findings.append(
                Finding(
                    FindingKind.orphan_index_rows,
                    f"{rows} index rows that no publish recorded",
                    source,
                    day,
                    Stage.export,
                )
            )
    return findings


def _future_findings(
    session: Session,
    settings: Settings,
    sources: list[str],
    start: date | None,
    end: date | None,
    now: datetime,
) -> list[Finding]:
    """A finding per day after today (in the configured timezone) a source has items for."""
    today = now.astimezone(settings.timezone).date()
    findings = []
    for future in coverage.future_days(session, sources=sources, today=today):
        for day in future.days:
            if (start and day < start) or (end and day > end):
                continue
            findings.append(
                Finding(
                    FindingKind.future_dated,
                    f"items dated {day}, after today ({today}): catch_up_recent never reaches "
                    "them; check the record's date or the clock that wrote it",
                    future.source,
                    day,
                    Stage.export,
                )
            )
    return findings


# a temporary artifact older than this belongs to a write that died: writes take seconds
LEFTOVER_AGE = timedelta(hours=1)


def _leftover_findings(
    settings: Settings, sources: list[str], start: date | None, end: date | None, now: datetime
) -> list[Finding]:
    """Temporary artifacts that writes which died left behind (a worker killed between its
    temporary write and the rename or copy to the final key): never read, so removed here,
    as dead leases are ended; one finding per source says how many and the oldest."""
    store = artifacts(settings)
    findings = []
    for source in sources:
        left: dict[str, datetime] = {}
        for stage in (Stage.export, Stage.embed):
            folder = stage_folder(stage, source)
            for key, when in store.leftovers(folder, now - LEFTOVER_AGE).items():
                day = _day_of(meant_for(key))
                if day is None or not ((start and day < start) or (end and day > end)):
                    left[key] = when
        if not left:
            continue
        for key in left:
            store.delete(key)
        oldest = min(left.values()).astimezone(settings.timezone)
        findings.append(
            Finding(
                FindingKind.leftover_temporary,
                f"removed {len(left)} temporary artifact{'s' if len(left) != 1 else ''} that "
                f"writes which died left behind (the oldest from {oldest:%Y-%m-%d %H:%M}); "
                "no day lost anything: a day is done only once its final artifact is in place",
                source,
            )
        )
    return findings


def _day_of(key: str) -> date | None:
    """The day of an artifact key (`…/<YYYY>/<YYYY-MM-DD>.<ext>`)."""
    try:
        return date.fromisoformat(key.rsplit("/", 1)[-1].split(".", 1)[0])
    except ValueError:
        return None


PROBLEM_FINDINGS = 100  # per source; one more finding counts the rest


def _problem_findings(
    session: Session, sources: list[str], start: date | None, end: date | None
) -> list[Finding]:
    """A finding per record a source scan could not read (or read only repaired). They
    carry no day: redoing a day cannot fix a source's record, so repair plans skip them."""
    findings: list[Finding] = []
    for source in sources:
        found, total = coverage.problems(session, sources=[source], start=start, end=end)
        findings += [
            Finding(FindingKind.source_problem, p.describe(), source)
            for p in found[:PROBLEM_FINDINGS]
        ]
        if total > PROBLEM_FINDINGS:
            more = f"{source}: … and {total - PROBLEM_FINDINGS} more problems (coverage lists them)"
            findings.append(Finding(FindingKind.source_problem, more, source))
    return findings


def _artifact_findings(
    settings: Settings, source: str, day: date, stages: dict[Stage, LedgerEntry]
) -> list[Finding]:
    findings = []
    store = artifacts(settings)
    for stage in (Stage.export, Stage.embed):
        entry = stages.get(stage)
        if entry is None or entry.artifact_sha is None:
            continue
        key = stage_key(stage, source, day)
        found = store.sha256(key)
        if found is None:
            findings.append(
                Finding(
                    FindingKind.missing_artifact,
                    f"{store.location(key)} is gone",
                    source,
                    day,
                    stage,
                )
            )
        elif found != entry.artifact_sha:
            findings.append(
                Finding(
                    FindingKind.corrupted_artifact,
                    f"{store.location(key)} changed since {entry.stage} wrote it",
                    source,
                    day,
                    stage,
                )
            )
    return findings


def _drift(session: Session, settings: Settings, source: str, day: date) -> str:
    """How a published day's items differ from the source now: edited, added, deleted."""
    now = dict(
        session.execute(
            select(SourceItem.item_id, SourceItem.content_hash).where(
                SourceItem.source == source, SourceItem.day == day
            )
        ).all()
    )
    then: dict[str, str] = {}
    try:
        for line in _read_or_none(settings, export_key(source, day)).splitlines():
            record = json.loads(line)
            then[record["item_id"]] = record["content_hash"]
    except (ValueError, KeyError, TypeError):
        return f"the source changed since publish ({len(now)} items now; the export is unreadable)"
    edited = sum(1 for k in now.keys() & then.keys() if now[k] != then[k])
    added = len(now.keys() - then.keys())
    deleted = len(then.keys() - now.keys())
    return f"the source changed since publish: {edited} edited, {added} added, {deleted} deleted"


def _read_or_none(settings: Settings, key: str) -> bytes:
    """The artifact's bytes, or none when it is gone."""
    try:
        return artifacts(settings).read(key)
    except FileNotFoundError:
        return b""
