"""The benchmarks' baseline: an archive indexed by one naive single pass, in the same
process as the run it is set beside — parse everything, hash-embed, insert into FTS5 and a
vector table in one transaction; no control plane, no per-day artifacts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def naive_items(settings) -> list:  # type: ignore[no-untyped-def]
    """Every item of every configured source, read in one pass per source by the kinds' own
    parsers (no scan index, no per-day reads): one `git log` of all refs, each JSONL line
    once, one split of each mbox, each note file once."""
    from softcopy.errors import BadRecord
    from softcopy.memory.items import MemoryItem
    from softcopy.memory.sources import git, jsonl, mbox, open_source

    items = []
    for config in settings.sources.values():
        source = open_source(config, settings.timezone)
        if isinstance(source, git.GitSource):
            out = source._git("log", git._FORMAT, *git._ALL_REFS, "--")
            items += [got for _, got in source._records(out.stdout)]
        elif isinstance(source, jsonl.JsonlSource):
            for unit, _ in source.units():
                with source._file(unit).open("rb") as lines:
                    for line in lines:
                        r = source._parse(unit, line)
                        items.append(
                            MemoryItem(
                                item_id=r.item_id,
                                source=source.name,
                                ts=r.ts,
                                day=r.day,
                                title=r.title,
                                text=r.text,
                                meta=r.meta,
                            )
                        )
        elif isinstance(source, mbox.MboxSource):
            for _unit, file in source._files():
                for n, (_, _, raw) in enumerate(mbox._messages(file), 1):
                    items.append(
                        mbox._read_message(file, f"message {n}", raw, source.name, source.tz)
                    )
        else:
            for unit, _ in source.units():
                items += list(source.load(unit, [unit]))
    return [item for item in items if not isinstance(item, BadRecord)]


def naive_pass(settings, folder: Path) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Index the archive of `settings` naively under `folder`; (items, seconds)."""
    from softcopy.memory.embedders import HashingEmbedder

    began = time.perf_counter()
    items = naive_items(settings)
    vectors = HashingEmbedder().embed([f"{i.title}\n{i.text}" for i in items])
    path = folder / "naive.sqlite"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE VIRTUAL TABLE docs USING fts5(item_id, title, text)")
        conn.execute("CREATE TABLE vec (item_id TEXT PRIMARY KEY, v BLOB)")
        conn.executemany(
            "INSERT INTO docs VALUES (?, ?, ?)", [(i.item_id, i.title, i.text) for i in items]
        )
        conn.executemany(
            "INSERT OR REPLACE INTO vec VALUES (?, ?)",
            [(i.item_id, v.tobytes()) for i, v in zip(items, vectors, strict=True)],
        )
    conn.close()
    return len(items), time.perf_counter() - began
