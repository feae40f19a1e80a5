"""The jsonl kind against real files: timestamps, field paths, bad lines, offsets."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import jsonl
from softcopy.memory.sources.base import UnitScan
from softcopy.memory.sources.jsonl import JsonlSource

NEW_YORK = ZoneInfo("America/New_York")


def source(path: Path, tz: tzinfo = UTC, **options: object) -> JsonlSource:
    return JsonlSource(name="chat", path=path, tz=tz, options=dict(options))


def write_lines(path: Path, *lines: dict[str, Any] | str | bytes) -> Path:
    """One line per argument: dicts as JSON, text and bytes as they are."""
    with path.open("wb") as file:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            file.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def scan_and_load(src: JsonlSource, unit: str) -> tuple[UnitScan, dict[str, MemoryItem]]:
    """Scan a unit, load every ref back by its locator, and check the two agree."""
    scan = src.scan_unit(unit)
    loaded = list(src.load(unit, [ref.locator for ref in scan.refs]))
    assert all(isinstance(item, MemoryItem) for item in loaded)
    by_id = {item.item_id: item for item in loaded if isinstance(item, MemoryItem)}
    assert {(r.item_id, r.day, r.content_hash) for r in scan.refs} == {
        (i.item_id, i.day, i.content_hash) for i in by_id.values()
    }
    return scan, by_id


def test_module_names_its_kind() -> None:
    assert (jsonl.KIND, jsonl.SOURCE, JsonlSource.kind) == ("jsonl", JsonlSource, "jsonl")


def test_timestamp_forms(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "chat.jsonl",
        {"id": "z", "ts": "2024-03-01T12:00:00Z", "text": "zulu"},
        {"id": "offset", "ts": "2024-03-01T23:30:00-05:00", "text": "offset"},
        {"id": "naive", "ts": "2024-03-01T22:00:00", "text": "naive is New York time"},
        {"id": "s", "ts": 1709251200, "text": "epoch seconds"},
        {"id": "fs", "ts": 1709251200.5, "text": "fractional seconds"},
        {"id": "ms", "ts": 1709251200123, "text": "epoch milliseconds"},
        {"id": "str", "ts": "1709251200", "text": "epoch seconds as text"},
        {"id": "slack", "ts": "1701010100.000200", "text": "Slack's ts"},
        {"id": "msstr", "ts": "1701010100000", "text": "not the year 1701"},
    )
    _scan, got = scan_and_load(source(path, NEW_YORK), "chat.jsonl")
    ts = {item_id.split(":")[-1]: (item.ts, item.day) for item_id, item in got.items()}
    assert ts == {
        "z": (datetime(2024, 3, 1, 12, tzinfo=UTC), date(2024, 3, 1)),
        "offset": (datetime(2024, 3, 2, 4, 30, tzinfo=UTC), date(2024, 3, 1)),
        "naive": (datetime(2024, 3, 2, 3, tzinfo=UTC), date(2024, 3, 1)),
        "s": (datetime(2024, 3, 1, tzinfo=UTC), date(2024, 2, 29)),
        "fs": (datetime(2024, 3, 1, 0, 0, 0, 500000, tzinfo=UTC), date(2024, 2, 29)),
        "ms": (datetime(2024, 3, 1, 0, 0, 0, 123000, tzinfo=UTC), date(2024, 2, 29)),
        "str": (datetime(2024, 3, 1, tzinfo=UTC), date(2024, 2, 29)),
        "slack": (datetime(2023, 11, 26, 14, 48, 20, 200, tzinfo=UTC), date(2023, 11, 26)),
        "msstr": (datetime(2023, 11, 26, 14, 48, 20, tzinfo=UTC), date(2023, 11, 26)),
    }
    assert all(item.ts.tzinfo is UTC for item in got.values())


def test_configured_zone_sets_the_day(tmp_path: Path) -> None:
    """Naive times are wall-clock times in the zone; aware ones are converted into it."""
    path = write_lines(
        tmp_path / "c.jsonl",
        {"id": "naive", "ts": "2024-03-01T22:00:00", "text": "late, local"},
        {"id": "aware", "ts": "2024-03-02T02:00:00Z", "text": "late, in UTC"},
    )
    in_utc = scan_and_load(source(path), "c.jsonl")[1]
    in_ny = scan_and_load(source(path, NEW_YORK), "c.jsonl")[1]
    naive, aware = "jsonl:c.jsonl:naive", "jsonl:c.jsonl:aware"
    assert (in_utc[naive].ts, in_utc[naive].day) == (
        datetime(2024, 3, 1, 22, tzinfo=UTC),
        date(2024, 3, 1),
    )
    assert (in_ny[naive].ts, in_ny[naive].day) == (
        datetime(2024, 3, 2, 3, tzinfo=UTC),
        date(2024, 3, 1),
    )
    assert (in_utc[aware].day, in_ny[aware].day) == (date(2024, 3, 2), date(2024, 3, 1))


def test_item_fields_title_and_meta(tmp_path: Path) -> None:
    long_line = "word " * 30
    path = write_lines(
        tmp_path / "c.jsonl",
        {"id": 7, "ts": 1709251200, "text": "body", "title": "Subject", "user": "ann", "n": 1},
        {"id": "x", "ts": 1709251200, "text": f"\n  {long_line}\nsecond line"},
    )
    _scan, got = scan_and_load(source(path), "c.jsonl")
    first = got["jsonl:c.jsonl:7"]
    assert (first.source, first.title, first.text) == ("chat", "Subject", "body")
    assert first.meta == {"user": "ann", "n": 1}
    second = got["jsonl:c.jsonl:x"]
    assert second.title == long_line.strip()[:80].rstrip()
    assert second.meta == {}


def test_dotted_field_names(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "c.jsonl",
        {
            "meta": {"time": "2024-03-01T10:00:00Z"},
            "message": {"id": 42, "body": "hello", "author": "ann"},
            "channel": "general",
        },
    )
    src = source(
        path, ts_field="meta.time", text_field="message.body", id_field="message.id", title_field=""
    )
    _scan, got = scan_and_load(src, "c.jsonl")
    item = got["jsonl:c.jsonl:42"]
    assert (item.text, item.title, item.day) == ("hello", "hello", date(2024, 3, 1))
    assert item.meta == {"message": {"author": "ann"}, "channel": "general"}


def test_exact_key_with_dot_wins_over_path(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", {"ts": 1709251200, "msg.text": "flat", "msg": {}})
    [item] = scan_and_load(source(path, text_field="msg.text"), "c.jsonl")[1].values()
    assert (item.text, item.meta) == ("flat", {"msg": {}})


def test_bad_records_are_problems_with_line_numbers(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "c.jsonl",
        {"ts": 1709251200, "text": "good"},
        '{"ts": 1709251200, "text": ',
        "[1, 2]",
        "   ",
        {"text": "no time"},
        {"ts": "yesterday", "text": "bad time"},
        {"ts": "2024-03-01T10:00:00Z", "title": "no text"},
        b'{"ts": 1709251200, "text": "caf\xe9"}',
        {"ts": True, "text": "a boolean is not a time"},
        {"ts": 1709251200, "text": 5},
        {"ts": 1709251200, "text": "good too"},
        '{"ts": NaN, "text": "not a number"}',
        {"ts": 10**400, "text": "far too big"},
    )
    scan = source(path).scan_unit("c.jsonl")
    assert len(scan.refs) == 3  # line 8's bad byte is repaired, with a warning
    where = {p.where: p for p in scan.problems}
    assert sorted(where, key=lambda w: int(w.split()[1])) == [
        f"line {n}" for n in (2, 3, 5, 6, 7, 9, 10, 12, 13)
    ]
    assert "out of range" in where["line 12"].reason
    assert "out of range" in where["line 13"].reason
    assert where["line 2"].reason.startswith("malformed JSON")
    assert str(where["line 2"]).startswith(f"{path}:line 2: ")
    assert where["line 3"].reason == "not a JSON object but list"
    assert where["line 5"].reason == "timestamp field 'ts' is missing"
    assert "not ISO 8601" in where["line 6"].reason
    assert where["line 7"].reason == "text field 'text' is missing"
    assert where["line 7"].day == date(2024, 3, 1)  # the timestamp parsed
    assert where["line 5"].day is None
    assert [(r.where, r.day) for r in scan.repairs] == [("line 8", date(2024, 3, 1))]
    assert "not a string" in where["line 10"].reason
    assert all(isinstance(p, BadRecord) for p in scan.problems)


def test_load_by_offsets_round_trips_a_subset(tmp_path: Path) -> None:
    rows = [{"ts": 1709251200 + 3600 * i, "text": f"message {i}", "k": i} for i in range(50)]
    path = write_lines(tmp_path / "c.jsonl", *rows)
    src = source(path)
    scan = src.scan_unit("c.jsonl")
    wanted = scan.refs[40:] + scan.refs[3:5]  # out of order on purpose
    loaded = list(src.load("c.jsonl", [r.locator for r in wanted]))
    assert {(i.item_id, i.content_hash) for i in loaded if isinstance(i, MemoryItem)} == {
        (r.item_id, r.content_hash) for r in wanted
    }
    assert list(src.load("c.jsonl", [])) == []


def test_ids_without_id_field_survive_lines_inserted_above(tmp_path: Path) -> None:
    rows = [{"ts": "2024-03-01T10:00:00Z", "text": "one"}, {"ts": 1709287200, "text": "two"}]
    path = write_lines(tmp_path / "c.jsonl", *rows)
    src = source(path)
    before = src.scan_unit("c.jsonl").refs
    write_lines(path, {"ts": 1709200000, "text": "a late arrival"}, *rows)
    after = src.scan_unit("c.jsonl").refs
    assert [r.item_id for r in after[1:]] == [r.item_id for r in before]
    assert [r.locator for r in after[1:]] != [r.locator for r in before]
    assert all(r.item_id.startswith("jsonl:c.jsonl:") for r in after)
    assert len({r.item_id for r in after}) == 3
    scan_and_load(src, "c.jsonl")


def test_the_same_id_twice_stays_unique(tmp_path: Path) -> None:
    row = {"ts": 1709251200, "text": "same"}
    path = write_lines(tmp_path / "c.jsonl", row, row, {"id": "a", **row}, {"id": "a", **row})
    _scan, got = scan_and_load(source(path), "c.jsonl")
    assert len(got) == 4
    assert "jsonl:c.jsonl:a~2" in got


def test_edit_keeps_explicit_id_and_changes_hash(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", {"id": 1, "ts": 1709251200, "text": "draft"})
    src = source(path)
    [(unit, stamp)] = list(src.units())
    [ref] = src.scan_unit(unit).refs
    write_lines(path, {"id": 1, "ts": 1709251200, "text": "final text"})
    [(_, new_stamp)] = list(src.units())
    [new_ref] = src.scan_unit(unit).refs
    assert new_stamp != stamp
    assert (new_ref.item_id, new_ref.content_hash != ref.content_hash) == (ref.item_id, True)


def test_load_after_the_file_changed_reports_instead_of_misreading(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", {"ts": 1, "text": "a"}, {"ts": 2, "text": "b"})
    src = source(path)
    refs = src.scan_unit("c.jsonl").refs
    path.write_bytes(b'{"ts": 1, "text": "a much longer first line now"}\n')
    [bad] = list(src.load("c.jsonl", [refs[1].locator]))
    assert isinstance(bad, BadRecord)
    assert bad.where == "line 1"
    assert "changed" in bad.reason


def test_folder_of_files(tmp_path: Path) -> None:
    write_lines(tmp_path / "b.ndjson", {"ts": 1709251200, "text": "b"})
    write_lines(tmp_path / "a.jsonl", {"ts": 1709251200, "text": "a"})
    write_lines(tmp_path / ".hidden.jsonl", {"ts": 1709251200, "text": "h"})
    (tmp_path / "notes.txt").write_text("not jsonl")
    (tmp_path / "sub").mkdir()
    write_lines(tmp_path / "sub" / "deep.jsonl", {"ts": 1709251200, "text": "d"})
    src = source(tmp_path)
    units = list(src.units())
    assert [u for u, _ in units] == ["a.jsonl", "b.ndjson"]
    a = tmp_path / "a.jsonl"
    assert units[0][1] == f"{a.stat().st_mtime_ns}:{a.stat().st_size}"
    _scan, got = scan_and_load(src, "b.ndjson")
    [item_id] = got
    assert item_id.startswith("jsonl:b.ndjson:")


def test_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"ts": 1709251200, "text": "bom"}\r\n{"ts": 1, "text": "x"}\r\n')
    scan, got = scan_and_load(source(path), "c.jsonl")
    assert scan.problems == []
    assert sorted(item.text for item in got.values()) == ["bom", "x"]


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown jsonl option"):
        source(tmp_path, txt_field="body")
    with pytest.raises(ConfigError, match="ts_field"):
        source(tmp_path, ts_field="")
    with pytest.raises(ConfigError, match="no such JSONL"):
        list(source(tmp_path / "gone.jsonl").units())


def test_mtime_touch_changes_stamp_only(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", {"ts": 1709251200, "text": "a"})
    src = source(path)
    [(_, stamp)] = list(src.units())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    [(_, touched)] = list(src.units())
    assert touched != stamp
