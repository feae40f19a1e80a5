"""Export: a source's (source, day) items → `<home>/export/<source>/<YYYY>/<day>.jsonl`.

A day's bad records fail its export, or with `skip_bad_records` are skipped and counted in
its ledger entry. Bad records whose day cannot be told are not any day's: they are problems
of the source (scan.source_problems), counted once per source (scan.undated_count).
The export keeps every item's full text, however long; only embed reads a prefix.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

from sqlmodel import Session

from softcopy.errors import BadRecord, UnreadableRecords
from softcopy.memory import scan
from softcopy.memory.artifacts import artifacts, export_key
from softcopy.memory.items import MemoryItem, canonical_json, digest
from softcopy.memory.sources import Source, load_many
from softcopy.memory.stage import StageContext, StageResult
from softcopy.memory.stages import Stage

READ_AHEAD_DAYS = 32  # days read at once at most: what a batch holds in memory is bounded


def run(ctx: StageContext, source: str, day: date) -> StageResult:
    """Export one day of one source, sorted by (ts, item_id); byte-identical when redone."""
    ctx.source(source)  # the scan index refreshed first: its problems and refs are of now
    known_bad = scan.day_problems(ctx.session, source, day)
    problems = [f"{p.location}: {p.reason}" for p in known_bad]
    skipped = len(known_bad)
    items: list[MemoryItem] = []
    for loaded in _day_items(ctx, source, day):
        if isinstance(loaded, BadRecord):
            problems.append(str(loaded))
            skipped += 1
        else:
            items.append(loaded)
    if problems and not ctx.skip_bad_records:
        raise UnreadableRecords(source, day, problems)

    items.sort(key=lambda item: (item.ts, item.item_id))
    pairs = [(item.item_id, item.content_hash) for item in items]
    # One encoded line per item, joined once: a huge item costs a few copies of itself.
    lines = [canonical_json(item.to_record()).encode() for item in items]
    body = b"\n".join(lines) + b"\n" if lines else b""
    del lines
    key, store = export_key(source, day), artifacts(ctx.settings)
    ctx.before_write()
    sha = store.write(key, body)
    result = StageResult(
        stage=Stage.export,
        source=source,
        day=day,
        items=len(items),
        skipped=skipped,
        input_digest=_source_digest(ctx, source, day),
        output_digest=digest(pairs),
        artifact=store.location(key),
        artifact_sha=sha,
        problems=tuple(problems),
    )
    ctx.record(result)
    return result


def items_for_days(
    session: Session, source: Source, days: list[date]
) -> dict[date, list[MemoryItem | BadRecord]]:
    """Each day's items and the bad records met reading them, with one read of the source
    for all the days (for git, one process for all their commits). The same outcomes, in
    the same order, as reading each day on its own: per day, its units in name order."""
    locators: dict[tuple[date, str], list[str]] = defaultdict(list)
    for ref in scan.days_refs(session, source.name, days):
        locators[(ref.day, ref.unit)].append(ref.locator)
    keys = sorted(locators)
    out: dict[date, list[MemoryItem | BadRecord]] = {day: [] for day in days}
    for n, loaded in load_many(source, [(unit, locators[(d, unit)]) for d, unit in keys]):
        day = keys[n][0]
        if (
            isinstance(loaded, BadRecord) or loaded.day == day
        ):  # an item that moved day is not this day's
            out[day].append(loaded)
    return out


def _day_items(ctx: StageContext, source: str, day: date) -> list[MemoryItem | BadRecord]:
    """The day's items, read together with the next days the context says are coming."""
    key = (source, day)
    if key not in ctx.read_ahead:
        opened = ctx.source(source)
        ahead = [
            d
            for d in ctx.days_ahead.get(source, ())
            if d > day and (source, d) not in ctx.read_ahead
        ][: READ_AHEAD_DAYS - 1]
        read = items_for_days(ctx.session, opened, [day, *ahead])
        ctx.read_ahead.update(((source, d), got) for d, got in read.items())
    return ctx.read_ahead.pop(key)


def read(data: bytes) -> list[MemoryItem]:
    """Items of an export artifact's bytes, in file order."""
    return [MemoryItem.from_record(json.loads(line)) for line in data.splitlines() if line]


def _source_digest(ctx: StageContext, source: str, day: date) -> str:
    rows = scan.source_days(ctx.session, source, day, day)
    return rows[0].digest if rows else digest([])
