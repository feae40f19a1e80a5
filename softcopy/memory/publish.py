"""Publish: a day's export and vectors → the search index, replacing that (source, day)'s
rows in one transaction."""

from __future__ import annotations

from datetime import date

from softcopy.errors import StageFailed
from softcopy.memory import export
from softcopy.memory.artifacts import read_checked, vectors_from_bytes
from softcopy.memory.indexes import open_index
from softcopy.memory.items import digest
from softcopy.memory.stage import (
    StageContext,
    StageResult,
    embed_input_digest,
)
from softcopy.memory.stages import Stage


def run(ctx: StageContext, source: str, day: date) -> StageResult:
    exported = ctx.upstream(source, day, Stage.export, wanted_by=Stage.publish)
    embedded = ctx.upstream(source, day, Stage.embed, wanted_by=Stage.publish)
    assert exported.output_digest is not None and embedded.output_digest is not None
    if embedded.input_digest != embed_input_digest(exported.output_digest, ctx.embedder.name):
        raise StageFailed(
            Stage.publish, source, day, "the vectors are older than the export; run embed first"
        )
    items = export.read(read_checked(ctx.settings, exported, Stage.publish))
    vectors = vectors_from_bytes(read_checked(ctx.settings, embedded, Stage.publish))
    if len(vectors) != len(items):
        raise StageFailed(
            Stage.publish, source, day, f"{len(items)} items but {len(vectors)} vectors"
        )
    if ctx.shrink_guard is not None:
        ctx.shrink_guard.check(source, day, ctx.published(source, day), len(items))
    ctx.before_write()
    open_index(ctx.settings).replace_day(source=source, day=day, items=items, vectors=vectors)
    result = StageResult(
        stage=Stage.publish,
        source=source,
        day=day,
        items=len(items),
        skipped=0,
        input_digest=embedded.output_digest,
        output_digest=digest((item.item_id, item.content_hash) for item in items),
    )
    ctx.record(result)
    return result
