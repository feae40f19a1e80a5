"""Telegram Desktop exports (result.json), built here from the export's documented fields:
chats.list[].messages[], text as a string or a list of entities, date and date_unixtime."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.telegram import TelegramSource

TZ = ZoneInfo("America/New_York")


def unix(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso).timestamp()))


def message(ident: int, iso: str, text: Any, **more: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "date": iso[:19],
        "date_unixtime": unix(iso),
        "from": "Alice",
        "from_id": "user1",
        "text": text,
        **more,
    }


def export(*chats: dict[str, Any]) -> dict[str, Any]:
    return {"about": "Here is the data you requested.", "chats": {"about": "", "list": list(chats)}}


CHAT = {
    "name": "Bob",
    "type": "personal_chat",
    "id": 42,
    "messages": [
        message(1, "2024-03-01T15:00:00+00:00", "plain text"),
        message(
            2,
            "2024-03-01T16:00:00+00:00",
            [
                "see ",
                {"type": "link", "text": "example.com"},
                " and ",
                {"type": "text_link", "text": "this", "href": "https://x.org"},
                {"type": "bold", "text": "!"},
            ],
            edited="2024-03-01T16:05:00",
            edited_unixtime=unix("2024-03-01T16:05:00+00:00"),
            reply_to_message_id=1,
        ),
        message(3, "2024-03-02T03:00:00+00:00", "", photo="photos/photo_1.jpg"),
        {
            "id": 4,
            "type": "service",
            "date": "2024-03-02T04:00:00",
            "date_unixtime": unix("2024-03-02T04:00:00+00:00"),
            "actor": "Bob",
            "action": "pin_message",
            "text": "",
        },
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def read(src: TelegramSource) -> tuple[dict[str, MemoryItem], list[BadRecord]]:
    items: dict[str, MemoryItem] = {}
    problems: list[BadRecord] = []
    for unit, _ in src.units():
        scan = src.scan_unit(unit)
        problems += scan.problems
        for got in src.load(unit, [r.locator for r in scan.refs]):
            assert isinstance(got, MemoryItem)
            items[got.item_id] = got
    return items, problems


def source(path: Path, **options: Any) -> TelegramSource:
    return TelegramSource(name="tg", path=path, tz=TZ, options=options)


def test_messages_entities_media_and_days(tmp_path: Path) -> None:
    items, problems = read(source(write(tmp_path / "result.json", export(CHAT))))
    assert problems == []
    assert sorted(items) == ["telegram:42:1", "telegram:42:2", "telegram:42:3"]
    assert items["telegram:42:2"].text == "see example.com and this (https://x.org)!"
    assert items["telegram:42:2"].meta["edited"] == "2024-03-01T16:05:00+00:00"
    assert items["telegram:42:2"].meta["reply_to"] == "telegram:42:1"
    assert items["telegram:42:3"].text == "[photo]"
    # 03:00 UTC on March 2 is still March 1 in New York
    assert items["telegram:42:3"].day == date(2024, 3, 1)
    assert items["telegram:42:1"].title == "Alice in Bob: plain text"


def test_service_messages_follow_the_option(tmp_path: Path) -> None:
    path = write(tmp_path / "result.json", export(CHAT))
    items, _ = read(source(path, include_service=True))
    assert items["telegram:42:4"].text == "[Bob pin_message]"
    assert items["telegram:42:4"].meta["service"] == "pin_message"


def test_date_without_unixtime_is_wall_clock_in_the_timezone(tmp_path: Path) -> None:
    old = {
        "name": "Old",
        "id": 7,
        "messages": [
            {
                "id": 1,
                "type": "message",
                "date": "2019-05-01T22:30:00",
                "from": "Al",
                "text": "old export",
            }
        ],
    }
    items, _ = read(source(write(tmp_path / "result.json", old)))  # a single-chat export
    item = items["telegram:7:1"]
    assert item.day == date(2019, 5, 1)
    assert item.ts == datetime(2019, 5, 2, 2, 30, tzinfo=UTC)


def test_bad_messages_name_their_place(tmp_path: Path) -> None:
    chat = {
        "name": "X",
        "id": 1,
        "messages": [
            message(1, "2024-03-01T10:00:00+00:00", "ok"),
            {"id": 2, "type": "message", "text": "no date"},
            {"type": "message", "date_unixtime": "1709287200", "text": "no id"},
            "junk",
        ],
    }
    other = {"name": "Y", "id": 2}
    path = write(tmp_path / "result.json", export(chat, other))
    scan = source(path).scan_unit("result.json")
    assert [str(p) for p in scan.problems] == [
        f"{path}:chats.list[0].messages[1]: no date",
        f"{path}:chats.list[0].messages[2]: no message id",
        f"{path}:chats.list[0].messages[3]: a message is not a JSON object",
        f"{path}:chats.list[1]: a chat without a messages list",
    ]
    assert [p.day for p in scan.problems] == [None, date(2024, 3, 1), None, None]
    assert len(scan.refs) == 1


def test_non_utf8_bytes_are_repaired_and_malformed_json_is_one_problem(tmp_path: Path) -> None:
    raw = json.dumps(export(CHAT)).encode().replace(b"plain text", b"plain \xff text")
    path = tmp_path / "result.json"
    path.write_bytes(raw)
    scan = source(path).scan_unit("result.json")
    assert len(scan.repairs) == 1 and len(scan.refs) == 3
    path.write_text('{"chats": ')
    (bad,) = source(path).scan_unit("result.json").problems
    assert "malformed JSON" in str(bad) and bad.day is None


def test_an_edit_changes_the_stamp_and_the_hash_not_the_id(tmp_path: Path) -> None:
    path = write(tmp_path / "result.json", export(CHAT))
    src = source(path)
    (stamp,) = dict(src.units()).values()
    before = {r.item_id: r.content_hash for r in src.scan_unit("result.json").refs}
    changed = json.loads(json.dumps(CHAT))
    changed["messages"][0]["text"] = "plain text, edited"
    changed["messages"].append(message(5, "2024-03-03T10:00:00+00:00", "new"))
    write(path, export(changed))
    assert dict(src.units())["result.json"] != stamp
    after = {r.item_id: r.content_hash for r in src.scan_unit("result.json").refs}
    assert set(after) == set(before) | {"telegram:42:5"}
    assert after["telegram:42:1"] != before["telegram:42:1"]
    assert after["telegram:42:2"] == before["telegram:42:2"]


def test_a_few_mb_export_reads_every_message(tmp_path: Path) -> None:
    messages = [
        message(
            n,
            f"2024-01-{1 + n % 28:02d}T12:00:00+00:00",
            [f"message {n} ", {"type": "bold", "text": "x" * 40}],
        )
        for n in range(12_000)
    ]
    path = write(tmp_path / "result.json", export({"name": "Big", "id": 9, "messages": messages}))
    assert path.stat().st_size > 2_000_000
    scan = source(path).scan_unit("result.json")  # how fast: wall-clock limits live in bench/
    assert len(scan.refs) == 12_000 and not scan.problems


def test_missing_path_and_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such Telegram export"):
        list(source(tmp_path / "nope").units())
    with pytest.raises(ConfigError, match="unknown telegram option"):
        source(tmp_path, include_bots=True)
