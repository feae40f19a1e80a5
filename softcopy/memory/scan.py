"""The source scan index: which days each source has, with item counts and digests.

A scan re-reads only the units whose stamp changed since the last scan, so refreshing a
source that did not change costs one listing of its units, compared as one digest
(`SourceScan`); a kind with a cheaper listing stamp (git: where its refs point) is not even
listed. A unit of an append-only kind (JSONL, mbox) that only grew is read from where the
last scan stopped (`scan_tail`: its offset, a digest of the bytes before it, and its record
count are kept on `SourceUnit`); if those bytes changed, it is read again whole. Coverage
reads `SourceDay`; export reads `SourceItem` to find a day's items without reading the
whole source again.

`SourceProblem` keeps what a scan could not read: bad records of a day (they fail that
day's export unless skipped), bad records whose day cannot be told (problems of the source:
they fail no day, coverage and reconcile list them, `undated_count` counts them), and
repair warnings (items indexed with U+FFFD). Nothing a source yields can stop a scan:
every text stored here is repaired first, and a file whose name is not valid UTF-8 is a
problem of the source instead of a unit.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlmodel import Session

from softcopy.errors import BadRecord
from softcopy.memory.items import digest, repair_text
from softcopy.memory.sources import ItemRef, Repaired, Source, Tail, UnitScan
from softcopy.memory.tables import SourceDay, SourceItem, SourceProblem, SourceScan, SourceUnit

BATCH = 500


@dataclass
class ScanSummary:
    source: str
    units_read: int = 0
    units_removed: int = 0
    days_changed: set[date] = field(default_factory=set)


def refresh(session: Session, source: Source) -> ScanSummary:
    """Bring the scan index of `source` up to date; returns what changed."""
    summary = ScanSummary(source=source.name)
    recorded = session.scalar(select(SourceScan.listing).where(SourceScan.source == source.name))
    setup = _setup(source)
    stamp_of = getattr(source, "listing_stamp", None)
    cheap = stamp_of() if stamp_of is not None else None
    if cheap is not None and f"{setup}:{cheap}" == recorded:
        return summary  # no unit can have changed (a repository's refs did not move)
    now: dict[str, str] = {}
    unnamed: set[str] = set()  # units whose name the database cannot store (not UTF-8)
    for unit, stamp in source.units():
        key = repair_text(unit)
        if key != unit:
            unnamed.add(key)
        now[key] = stamp
    # taken before the units were read: a change made while they are read shows next time
    listing = f"{setup}:{cheap or _listing_digest(now)}"
    if listing == recorded:
        return summary  # the same units with the same stamps as the last scan found
    session.merge(SourceScan(source=source.name, listing=listing))
    known = {
        row.unit: row
        for row in session.execute(
            select(
                SourceUnit.unit,
                SourceUnit.stamp,
                SourceUnit.read_to,
                SourceUnit.prefix_digest,
                SourceUnit.records,
            ).where(SourceUnit.source == source.name)
        )
    }
    if known and not (recorded or "").startswith(f"{setup}:"):
        # scanned as another setup (another path, kind or timezone: the days of its items
        # may all differ now): every unit is read again, whatever its stamp
        summary.days_changed |= _forget_units(session, source.name, list(known))
        known = {}
    changed = [
        unit for unit, stamp in now.items() if unit not in known or known[unit].stamp != stamp
    ]
    removed = [unit for unit in known if unit not in now]
    if not changed and not removed:
        return summary

    grown = _read_appended(session, source, changed, known, now, summary)
    changed = [unit for unit in changed if unit not in grown]
    summary.days_changed |= _forget_units(session, source.name, changed + removed)
    pending = _Rows(session, source.name)
    named = [unit for unit in changed if unit not in unnamed]
    for unit, unit_scan in _scan_units(source, named):
        summary.days_changed |= pending.add(unit, now[unit], unit_scan)
    for unit in sorted(unnamed.intersection(changed)):
        reason = "the file name is not valid UTF-8; rename the file to index it"
        unit_scan = UnitScan(problems=[BadRecord(source.path / unit, None, reason)])
        summary.days_changed |= pending.add(unit, now[unit], unit_scan)
    pending.flush()
    summary.units_read = len(changed) + len(grown)
    summary.units_removed = len(removed)
    _recount_days(session, source.name, summary.days_changed)
    return summary


def _setup(source: Source) -> str:
    """What a scan's days depend on besides the units: the kind, the path, the timezone
    that tells a record's day (a day is a calendar day there) and the kind's options (which
    field holds the time)."""
    kind = getattr(type(source), "kind", type(source).__name__)
    options = json.dumps(getattr(source, "options_seen", {}), sort_keys=True, default=str)
    parts = (kind, str(source.path), str(getattr(source, "tz", "")), options)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _listing_digest(units: dict[str, str]) -> str:
    """A digest of every unit and its stamp: equal, and no unit changed since that listing."""
    h = hashlib.sha256()
    for unit in sorted(units):
        h.update(f"{unit}\0{units[unit]}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _read_appended(
    session: Session,
    source: Source,
    changed: list[str],
    known: dict[str, Any],
    now: dict[str, str],
    summary: ScanSummary,
) -> set[str]:
    """Units of an append-only kind that only grew since their last scan: their new records
    read from where that scan stopped and added to what it found. Returns those units; a
    unit whose earlier bytes changed (or a kind that cannot) is left to a full scan."""
    scan_tail = getattr(source, "scan_tail", None)
    if scan_tail is None:
        return set()
    grown: set[str] = set()
    pending = _Rows(session, source.name)
    for unit in changed:
        row = known.get(unit)
        if row is None or row.read_to is None or row.prefix_digest is None:
            continue
        refs = [
            ItemRef(r.day, r.item_id, r.content_hash, r.locator)
            for r in session.execute(
                select(
                    SourceItem.day, SourceItem.item_id, SourceItem.content_hash, SourceItem.locator
                ).where(SourceItem.source == source.name, SourceItem.unit == unit)
            )
        ]
        try:
            tail = scan_tail(unit, Tail(row.read_to, row.prefix_digest, row.records or 0), refs)
        except OSError:
            tail = None  # gone or unreadable since it was listed: the full scan says which
        if tail is None:
            continue
        grown.add(unit)
        summary.days_changed |= pending.add(unit, now[unit], tail, unit_row=False)
        mark = tail.tail
        session.execute(
            update(SourceUnit)
            .where(SourceUnit.source == source.name, SourceUnit.unit == unit)
            .values(
                stamp=now[unit],
                read_to=mark.offset if mark else None,
                prefix_digest=mark.digest if mark else None,
                records=mark.records if mark else None,
            )
        )
    pending.flush()
    return grown


def days_refs(session: Session, source: str, days: list[date]) -> list[SourceItem]:
    """The refs of several days in one query (in batches of BATCH days)."""
    found: list[SourceItem] = []
    for start in range(0, len(days), BATCH):
        chunk = days[start : start + BATCH]
        found += session.scalars(
            select(SourceItem).where(SourceItem.source == source, SourceItem.day.in_(chunk))
        )
    return found


def day_problems(session: Session, source: str, day: date) -> list[SourceProblem]:
    """Bad records of that day. Those whose day cannot be told belong to no day: they are
    problems of the source (`source_problems`), so they fail no day's export."""
    return list(
        session.scalars(
            select(SourceProblem)
            .where(SourceProblem.source == source, SourceProblem.day == day)
            .where(SourceProblem.repaired.is_(False))  # type: ignore[attr-defined]
            .order_by(SourceProblem.id)
        )
    )


def source_problems(
    session: Session,
    sources: list[str],
    start: date | None = None,
    end: date | None = None,
    *,
    limit: int | None = None,
) -> list[SourceProblem]:
    """Problems of these sources: undated ones always, dated ones in [start, end]; undated
    first, then by day, bad records before repair warnings; the first `limit` of them."""
    query = _problems(sources, start, end).order_by(
        SourceProblem.day.is_not(None),  # type: ignore[union-attr]
        SourceProblem.day,
        SourceProblem.repaired,
        SourceProblem.source,
        SourceProblem.id,
    )
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def count_problems(
    session: Session, sources: list[str], start: date | None = None, end: date | None = None
) -> int:
    subquery = _problems(sources, start, end).subquery()
    return session.scalar(select(func.count()).select_from(subquery)) or 0


def _problems(sources: list[str], start: date | None, end: date | None) -> Select:
    query = select(SourceProblem).where(SourceProblem.source.in_(sources))  # type: ignore[attr-defined]
    if start:
        query = query.where(SourceProblem.day.is_(None) | (SourceProblem.day >= start))  # type: ignore[union-attr]
    if end:
        query = query.where(SourceProblem.day.is_(None) | (SourceProblem.day <= end))  # type: ignore[union-attr]
    return query


def undated_count(session: Session, source: str) -> int:
    """Bad records of a source whose day cannot be told: skipped, and counted here once."""
    return len(
        session.scalars(
            select(SourceProblem.id).where(
                SourceProblem.source == source,
                SourceProblem.day.is_(None),  # type: ignore[union-attr]
                SourceProblem.repaired.is_(False),  # type: ignore[attr-defined]
            )
        ).all()
    )


def source_days(
    session: Session, source: str, start: date | None, end: date | None
) -> list[SourceDay]:
    query = select(SourceDay).where(SourceDay.source == source)
    if start:
        query = query.where(SourceDay.day >= start)
    if end:
        query = query.where(SourceDay.day <= end)
    return list(session.scalars(query.order_by(SourceDay.day)))


def _scan_units(source: Source, units: list[str]) -> Iterable[tuple[str, UnitScan]]:
    """Read changed units, in batches where the source kind can (git reads many commits at once)."""
    batch_reader = getattr(source, "scan_units", None)
    if batch_reader is None:
        for unit in units:
            yield unit, source.scan_unit(unit)
        return
    for start in range(0, len(units), BATCH):
        yield from batch_reader(units[start : start + BATCH]).items()


def _forget_units(session: Session, source: str, units: list[str]) -> set[date]:
    days: set[date] = set()
    for start in range(0, len(units), BATCH):
        chunk = units[start : start + BATCH]
        days |= set(
            session.scalars(
                select(SourceItem.day)
                .where(SourceItem.source == source, SourceItem.unit.in_(chunk))
                .distinct()
            )
        )
        days |= {
            d
            for d in session.scalars(
                select(SourceProblem.day).where(
                    SourceProblem.source == source, SourceProblem.unit.in_(chunk)
                )
            )
            if d is not None
        }
        for table in (SourceItem, SourceProblem):
            session.execute(delete(table).where(table.source == source, table.unit.in_(chunk)))
        session.execute(
            delete(SourceUnit).where(SourceUnit.source == source, SourceUnit.unit.in_(chunk))
        )
    return days


class _Rows:
    """Scan results buffered and inserted in batches: one statement per table per batch."""

    def __init__(self, session: Session, source: str) -> None:
        self.session = session
        self.source = source
        self.units: list[dict[str, object]] = []
        self.items: list[dict[str, object]] = []
        self.problems: list[dict[str, object]] = []

    def add(self, unit: str, stamp: str, scan: UnitScan, *, unit_row: bool = True) -> set[date]:
        if unit_row:
            mark = scan.tail
            self.units.append(
                {
                    "source": self.source,
                    "unit": unit,
                    "stamp": stamp,
                    "read_to": mark.offset if mark else None,
                    "prefix_digest": mark.digest if mark else None,
                    "records": mark.records if mark else None,
                }
            )
        self.items += [
            {
                "source": self.source,
                "unit": unit,
                "day": ref.day,
                "item_id": ref.item_id,
                "content_hash": ref.content_hash,
                "locator": ref.locator,
            }
            for ref in scan.refs
        ]
        self.problems += [
            {
                "source": self.source,
                "unit": unit,
                "day": problem.day,
                # a path or a reason may quote text that cannot be stored as it is
                "location": repair_text(
                    f"{problem.path}:{problem.where}" if problem.where else problem.path
                ),
                "reason": repair_text(problem.reason),
                "repaired": isinstance(problem, Repaired),
            }
            for problem in [*scan.problems, *scan.repairs]
        ]
        if len(self.items) >= 5000 or len(self.units) >= BATCH:
            self.flush()
        return {ref.day for ref in scan.refs} | {p.day for p in scan.problems if p.day is not None}

    def flush(self) -> None:
        for table, rows in (
            (SourceUnit, self.units),
            (SourceItem, self.items),
            (SourceProblem, self.problems),
        ):
            if rows:
                self.session.execute(insert(table.__table__), rows)
            rows.clear()


def _recount_days(session: Session, source: str, days: set[date]) -> None:
    ordered = sorted(days)
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start : start + BATCH]
        pairs: dict[date, list[tuple[str, str]]] = defaultdict(list)
        for day, item_id, chash in session.execute(
            select(SourceItem.day, SourceItem.item_id, SourceItem.content_hash).where(
                SourceItem.source == source, SourceItem.day.in_(chunk)
            )
        ):
            pairs[day].append((item_id, chash))
        problems: dict[date, int] = defaultdict(int)
        for (day,) in session.execute(
            select(SourceProblem.day).where(
                SourceProblem.source == source,
                SourceProblem.day.in_(chunk),  # type: ignore[union-attr]
                SourceProblem.repaired.is_(False),  # type: ignore[attr-defined]
            )
        ):
            problems[day] += 1
        session.execute(
            delete(SourceDay).where(SourceDay.source == source, SourceDay.day.in_(chunk))
        )
        rows = [
            {
                "source": source,
                "day": day,
                "items": len(pairs[day]),
                "problems": problems[day],
                "digest": digest(pairs[day]),
            }
            for day in chunk
            if pairs[day] or problems[day]
        ]
        if rows:
            session.execute(insert(SourceDay.__table__), rows)
