"""The source scan index: which days each source has, with item counts and digests.

A scan re-reads only the units whose stamp changed since the last scan, so refreshing a
source that did not change costs one listing of its units. Coverage reads `SourceDay`;
export reads `SourceItem` to find a day's items without reading the whole source again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, insert, select
from sqlmodel import Session

from softcopy.memory.items import digest
from softcopy.memory.sources import Source, UnitScan
from softcopy.memory.tables import SourceDay, SourceItem, SourceProblem, SourceUnit

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
    now = dict(source.units())
    known = dict(
        session.execute(
            select(SourceUnit.unit, SourceUnit.stamp).where(SourceUnit.source == source.name)
        ).all()
    )
    changed = [unit for unit, stamp in now.items() if known.get(unit) != stamp]
    removed = [unit for unit in known if unit not in now]
    if not changed and not removed:
        return summary

    summary.days_changed |= _forget_units(session, source.name, changed + removed)
    pending = _Rows(session, source.name)
    for unit, unit_scan in _scan_units(source, changed):
        summary.days_changed |= pending.add(unit, now[unit], unit_scan)
    pending.flush()
    summary.units_read = len(changed)
    summary.units_removed = len(removed)
    _recount_days(session, source.name, summary.days_changed)
    return summary


def day_refs(session: Session, source: str, day: date) -> list[SourceItem]:
    return list(
        session.scalars(
            select(SourceItem).where(SourceItem.source == source, SourceItem.day == day)
        )
    )


def day_problems(session: Session, source: str, day: date) -> list[SourceProblem]:
    """Bad records of that day, and those whose day could not be told (they may be of it)."""
    return list(
        session.scalars(
            select(SourceProblem)
            .where(SourceProblem.source == source)
            .where((SourceProblem.day == day) | (SourceProblem.day.is_(None)))
            .order_by(SourceProblem.id)
        )
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

    def add(self, unit: str, stamp: str, scan: UnitScan) -> set[date]:
        self.units.append({"source": self.source, "unit": unit, "stamp": stamp})
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
                "location": f"{problem.path}:{problem.where}" if problem.where else problem.path,
                "reason": problem.reason,
            }
            for problem in scan.problems
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
                SourceProblem.source == source, SourceProblem.day.in_(chunk)
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
