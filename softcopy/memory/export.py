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

from softcopy.errors import BadRecord, StageFailed
from softcopy.ingestion.states import Stage
from softcopy.memory import ledger, scan
from softcopy.memory.items import MemoryItem, canonical_json, digest
from softcopy.memory.stage import StageContext, StageResult, export_path, write_atomic


def run(ctx: StageContext, source: str, day: date) -> StageResult:
    """Export one day of one source, sorted by (ts, item_id); byte-identical when redone."""
    opened = ctx.source(source)
    known_bad = scan.day_problems(ctx.session, source, day)
    problems = [f"{p.location}: {p.reason}" for p in known_bad]
    skipped = len(known_bad)
    by_unit: dict[str, list[str]] = defaultdict(list)
    for ref in scan.day_refs(ctx.session, source, day):
        by_unit[ref.unit].append(ref.locator)

    items: list[MemoryItem] = []
    for unit, locators in sorted(by_unit.items()):
        for loaded in opened.load(unit, locators):
            if isinstance(loaded, BadRecord):
                problems.append(str(loaded))
                skipped += 1
            elif loaded.day == day:
                items.append(loaded)
    if problems and not ctx.skip_bad_records:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StageFailed(
            Stage.export, source, day, f"{problems[0]}{more}; --skip-bad-records skips them"
        )

    items.sort(key=lambda item: (item.ts, item.item_id))
    pairs = [(item.item_id, item.content_hash) for item in items]
    # One encoded line per item, joined once: a huge item costs a few copies of itself.
    lines = [canonical_json(item.to_record()).encode() for item in items]
    body = b"\n".join(lines) + b"\n" if lines else b""
    del lines
    path = export_path(ctx.settings, source, day)
    ctx.before_write()
    sha = write_atomic(path, body)
    result = StageResult(
        stage=Stage.export,
        source=source,
        day=day,
        items=len(items),
        skipped=skipped,
        input_digest=_source_digest(ctx, source, day),
        output_digest=digest(pairs),
        artifact=path,
        artifact_sha=sha,
        problems=tuple(problems),
    )
    ledger.record_ok(
        ctx.session,
        source=source,
        day=day,
        stage=Stage.export,
        input_digest=result.input_digest,
        output_digest=result.output_digest,
        artifact_sha=sha,
        items=result.items,
        skipped=skipped,
        done_by=ctx.done_by,
        now=ctx.clock(),
    )
    return result


def read(data: bytes) -> list[MemoryItem]:
    """Items of an export artifact's bytes, in file order."""
    return [MemoryItem.from_record(json.loads(line)) for line in data.splitlines() if line]


def _source_digest(ctx: StageContext, source: str, day: date) -> str:
    rows = scan.source_days(ctx.session, source, day, day)
    return rows[0].digest if rows else digest([])
