"""Embed: a day's export → `<home>/vectors/<source>/<YYYY>/<day>.npy`, rows in export order.

Vectors come from the embedding cache when the (model, content hash) was embedded before.
An item is embedded from a prefix of its title and text, the first `EMBED_CHARS` (64 Ki)
characters, so memory per item is bounded however long a record is; the export, the index
and full-text search keep the whole text.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from softcopy.memory import cache, export, ledger
from softcopy.memory.artifacts import (
    artifacts,
    read_checked,
    require_done,
    vectors_key,
    vectors_to_bytes,
)
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
    upstream = require_done(
        ctx.session, source=source, day=day, stage=Stage.export, wanted_by=Stage.embed
    )
    items = export.read(read_checked(ctx.settings, upstream, Stage.embed))
    model = ctx.embedder
    now = ctx.clock()
    hashes = [item.content_hash for item in items]
    vectors = cache.lookup(ctx.session, model=model.name, hashes=hashes, now=now)
    todo = {item.content_hash: item for item in items if item.content_hash not in vectors}
    if todo:
        fresh = model.embed([embed_text(item.title, item.text) for item in todo.values()])
        computed = dict(zip(todo, fresh, strict=True))
        cache.store(ctx.session, model=model.name, vectors=computed, now=now)
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
    ledger.record(ctx.session, result, done_by=ctx.done_by, now=now)
    return result
