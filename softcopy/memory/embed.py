"""Embed: a day's export → `<home>/vectors/<source>/<YYYY>/<day>.npy`, rows in export order.

Vectors come from the embedding cache when the (model, content hash) was embedded before.
An item is embedded from a prefix of its title and text, the first `EMBED_CHARS` (64 Ki)
characters, so memory per item is bounded however long a record is; the export, the index
and full-text search keep the whole text.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from softcopy.memory import cache, export
from softcopy.memory.artifacts import artifacts, read_checked, vectors_key, vectors_to_bytes
from softcopy.memory.items import digest
from softcopy.memory.stage import (
    StageContext,
    StageResult,
    chain,
    embed_input_digest,
)
from softcopy.memory.stages import Stage

EMBED_CHARS = 64 * 1024


def embed_text(title: str, text: str) -> str:
    """What an item's vector is made from: the first EMBED_CHARS of "title\ntext"."""
    return f"{title[:EMBED_CHARS]}\n{text[:EMBED_CHARS]}"[:EMBED_CHARS]


def run(ctx: StageContext, source: str, day: date) -> StageResult:
    upstream = ctx.upstream(source, day, Stage.export, wanted_by=Stage.embed)
    items = export.read(read_checked(ctx.settings, upstream, Stage.embed))
    model = ctx.embedder
    now = ctx.clock()
    hashes = [item.content_hash for item in items]
    vectors = _cached(ctx, model.name, hashes, now) if items else {}
    todo = {item.content_hash: item for item in items if item.content_hash not in vectors}
    if todo:
        fresh = model.embed([embed_text(item.title, item.text) for item in todo.values()])
        computed = dict(zip(todo, fresh, strict=True))
        if ctx.pending is None:
            cache.store(ctx.session, model=model.name, vectors=computed, now=now)
        else:
            for chash, vector in computed.items():
                ctx.pending.vectors[(model.name, chash)] = cache.row(model.name, chash, vector, now)
        vectors.update(computed)
    matrix = (
        np.stack([vectors[h] for h in hashes]) if items else np.zeros((0, model.dim), np.float32)
    )
    key, store = vectors_key(source, day), artifacts(ctx.settings)
    ctx.before_write()
    sha = store.write(key, vectors_to_bytes(matrix))
    assert upstream.output_digest is not None
    result = StageResult(
        stage=Stage.embed,
        source=source,
        day=day,
        items=len(items),
        skipped=0,
        input_digest=embed_input_digest(upstream.output_digest, model.name),
        output_digest=chain(
            digest(zip([i.item_id for i in items], hashes, strict=True)), model.name
        ),
        artifact=store.location(key),
        artifact_sha=sha,
    )
    ctx.record(result)
    return result


def _cached(
    ctx: StageContext, model: str, hashes: list[str], now: datetime
) -> dict[str, np.ndarray]:
    """Vectors of those hashes already computed: in the cache, or (a job's step) stored by
    an earlier day of the step and not yet committed; their use is recorded."""
    if ctx.pending is None:
        return cache.lookup(ctx.session, model=model, hashes=hashes, now=now)
    pending = ctx.pending.vectors
    found = {
        h: np.frombuffer(pending[(model, h)]["vector"], dtype=np.float32)  # type: ignore[arg-type]
        for h in hashes
        if (model, h) in pending
    }
    rest = [h for h in hashes if h not in found]
    if rest:
        found |= cache.lookup(ctx.session, model=model, hashes=rest, now=now, touch=False)
    for h, vector in found.items():
        pending.setdefault((model, h), cache.row(model, h, vector, now))
    return found
