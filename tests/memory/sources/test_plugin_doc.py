"""The example kind of docs/sources.md runs as written: registered, opened, read."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from softcopy.config import SourceConfig
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import open_source
from softcopy.registry import SOURCES

DOC = Path(__file__).parents[3] / "docs" / "sources.md"


def test_the_documented_example_kind_reads_items_and_bad_records(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "class DayOneSource" in b)
    try:
        exec(compile(example, str(DOC), "exec"), {"__name__": "dayone_example"})
        journal = tmp_path / "journal.json"
        entries = [
            {"uuid": "a1", "creationDate": "2024-03-01T23:30:00+00:00", "text": "late\nmore"},
            {"uuid": "b2", "text": "undated"},
        ]
        journal.write_text(json.dumps({"entries": entries}))
        config = SourceConfig(name="journal", kind="dayone", path=journal, options={})
        source = open_source(config, ZoneInfo("Europe/Berlin"))
        ((unit, _),) = source.units()
        scan = source.scan_unit(unit)
        assert [(r.item_id, r.day) for r in scan.refs] == [("dayone:a1", date(2024, 3, 2))]
        assert [str(p) for p in scan.problems] == [f"{journal}:entries[1]: no creationDate"]
        (item,) = source.load(unit, [scan.refs[0].locator])
        assert isinstance(item, MemoryItem) and item.title == "late"
        # the built-in kinds are still there beside the one registered in process
        assert {"notes", "slack", "browser", "dayone"} <= set(SOURCES.names())
    finally:
        SOURCES.unregister("dayone")
