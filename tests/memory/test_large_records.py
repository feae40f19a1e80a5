"""One huge record costs a small multiple of its size in memory at every stage, not the
gigabytes a 50 MB JSONL line once took to embed."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlmodel import Session

from softcopy.config import add_source, load_settings
from softcopy.db import get_engine
from softcopy.memory import embed, export, index, publish
from softcopy.memory.embed import EMBED_CHARS, embed_text
from softcopy.memory.stage import StageContext, export_path

SIZE = 20_000_000  # characters of text in the one big record
BOUND = 8  # peak growth per stage, in multiples of the record (about 5 measured)
DAY = date(2026, 3, 1)


def peak_growth(step: Callable[[], object]) -> int:
    """Bytes Python allocated at the peak of `step`, beyond what was held before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_embed_reads_a_documented_prefix() -> None:
    text = "word " * EMBED_CHARS
    assert embed_text("title", text) == f"title\n{text}"[:EMBED_CHARS]
    assert embed_text("short", "text") == "short\ntext"  # small items embed as they always did


def test_a_20_mb_record_stays_within_a_small_multiple_of_its_size(home: Path) -> None:
    # Many distinct words, as in real text: what made the embedder's arrays huge.
    words = [f"w{i:x}" for i in range(1 << 16)]
    text = " ".join(words * (SIZE // (len(" ".join(words)) + 1) + 1))[:SIZE]
    path = home / "big.jsonl"
    with path.open("w") as handle:
        handle.write(json.dumps({"id": "big", "ts": f"{DAY}T10:00:00Z", "text": text}) + "\n")
        handle.write(json.dumps({"id": "small", "ts": f"{DAY}T11:00:00Z", "text": "hi"}) + "\n")
    del text
    add_source(home, name="big", kind="jsonl", path=path)
    settings = load_settings(home)
    with Session(get_engine(settings.database_url)) as session:
        ctx = StageContext(settings=settings, session=session)
        growth = {
            "scan": peak_growth(lambda: ctx.source("big")),
            "export": peak_growth(lambda: export.run(ctx, "big", DAY)),
            "embed": peak_growth(lambda: embed.run(ctx, "big", DAY)),
            "publish": peak_growth(lambda: publish.run(ctx, "big", DAY)),
        }
        session.commit()
    assert {k: v / SIZE for k, v in growth.items() if v > BOUND * SIZE} == {}
    assert export_path(settings, "big", DAY).stat().st_size > SIZE  # the full text is kept
    assert index.count(settings.index_path) == 2
