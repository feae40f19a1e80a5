"""Slack workspace exports, built here from Slack's documented export layout: users.json,
channels.json and one folder per channel with a JSON file of messages per day."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import UnitScan
from softcopy.memory.sources.slack import SlackSource

TZ = ZoneInfo("Europe/Berlin")
USERS = [
    {"id": "U1", "name": "alice", "real_name": "Alice Archer", "profile": {"display_name": ""}},
    {"id": "U2", "name": "bob", "profile": {"display_name": "Bobby", "real_name": "Bob B"}},
]
CHANNELS = [{"id": "C1", "name": "general"}, {"id": "C2", "name": "random"}]


def ts(day: str, hour: int, n: int = 0) -> str:
    instant = datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()
    return f"{instant:.0f}.{n:06d}"


LATE = f"{datetime(2024, 3, 1, 23, 30, tzinfo=UTC).timestamp():.0f}.000000"
DAY1 = [
    {
        "type": "message",
        "user": "U1",
        "text": "Hello <@U2>, see <#C2|random>",
        "ts": ts("2024-03-01", 9),
    },
    {
        "type": "message",
        "user": "U2",
        "text": "fixed the typo",
        "ts": ts("2024-03-01", 10),
        "edited": {"user": "U2", "ts": ts("2024-03-01", 11)},
        "thread_ts": ts("2024-03-01", 10),
        "reply_count": 1,
    },
    {
        "type": "message",
        "user": "U1",
        "text": "a reply &amp; a link <https://example.com|the site>",
        "ts": ts("2024-03-01", 10, 5),
        "thread_ts": ts("2024-03-01", 10),
        "parent_user_id": "U2",
    },
    {
        "type": "message",
        "subtype": "channel_join",
        "user": "U2",
        "text": "<@U2> has joined the channel",
        "ts": ts("2024-03-01", 8),
    },
    {
        "type": "message",
        "subtype": "bot_message",
        "bot_id": "B1",
        "username": "deploybot",
        "text": "deployed v2",
        "ts": ts("2024-03-01", 12),
    },
    {
        "type": "message",
        "subtype": "tombstone",
        "user": "USLACKBOT",
        "text": "This message was deleted.",
        "ts": ts("2024-03-01", 7),
    },
    # 23:30 UTC is already March 2 in Berlin: the day follows ts and the timezone
    {"type": "message", "user": "U1", "text": "late night", "ts": LATE},
]
DAY2 = [
    {
        "type": "message",
        "user": "U3",
        "user_profile": {"real_name": "Carol"},
        "text": "hi all",
        "ts": ts("2024-03-02", 9),
    }
]


def write_export(root: Path, days: dict[str, list[Any]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "users.json").write_text(json.dumps(USERS))
    (root / "channels.json").write_text(json.dumps(CHANNELS))
    for rel, messages in (
        days or {"general/2024-03-01.json": DAY1, "random/2024-03-02.json": DAY2}
    ).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(messages))
    return root


def zip_of(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return target


def source(path: Path, **options: Any) -> SlackSource:
    return SlackSource(name="slack", path=path, tz=TZ, options=options)


def read_all(src: SlackSource) -> tuple[dict[str, MemoryItem], list[BadRecord]]:
    items: dict[str, MemoryItem] = {}
    problems: list[BadRecord] = []
    for unit, _ in src.units():
        scan: UnitScan = src.scan_unit(unit)
        problems += scan.problems
        for got in src.load(unit, [r.locator for r in scan.refs]):
            assert isinstance(got, MemoryItem)
            items[got.item_id] = got
    return items, problems


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
def test_messages_threads_edits_and_names(tmp_path: Path, packed: bool) -> None:
    folder = write_export(tmp_path / "export")
    path = zip_of(folder, tmp_path / "export.zip") if packed else folder
    items, problems = read_all(source(path))
    assert problems == []
    first = items[f"slack:C1:{ts('2024-03-01', 9)}"]
    assert first.text == "Hello @Bobby, see #random"
    assert first.meta["user"] == "Alice Archer" and first.meta["channel"] == "general"
    assert first.title.startswith("Alice Archer in #general")
    edited = items[f"slack:C1:{ts('2024-03-01', 10)}"]
    assert edited.meta["edited"] == "2024-03-01T11:00:00+00:00"
    reply = items[f"slack:C1:{ts('2024-03-01', 10, 5)}"]
    assert reply.meta["reply_to"] == f"slack:C1:{ts('2024-03-01', 10)}"
    assert reply.text == "a reply & a link the site (https://example.com)"
    assert items[f"slack:C2:{ts('2024-03-02', 9)}"].meta["user"] == "Carol"
    bot = [i for i in items.values() if i.meta["user"] == "deploybot"]
    assert [b.text for b in bot] == ["deployed v2"]
    assert not any("joined" in i.text or "deleted" in i.text for i in items.values())
    late = [i for i in items.values() if i.text == "late night"]
    assert late[0].day == date(2024, 3, 2) and late[0].ts == datetime(
        2024, 3, 1, 23, 30, tzinfo=UTC
    )


def test_bots_and_joins_follow_the_options(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    items, _ = read_all(source(folder, include_bots=False, include_joins=True))
    texts = {i.text for i in items.values()}
    assert "deployed v2" not in texts
    assert "@Bobby has joined the channel" in texts


def test_ids_and_stamps_survive_a_rescan_and_an_edit(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    src = source(folder)
    before = dict(src.units())
    ids = {r.item_id for r in src.scan_unit("general/2024-03-01.json").refs}
    assert dict(source(folder).units()) == before
    messages = [
        *DAY1,
        {"type": "message", "user": "U2", "text": "appended", "ts": ts("2024-03-01", 13)},
    ]
    (folder / "general/2024-03-01.json").write_text(json.dumps(messages))
    after = dict(src.units())
    assert after["general/2024-03-01.json"] != before["general/2024-03-01.json"]
    assert after["random/2024-03-02.json"] == before["random/2024-03-02.json"]
    again = {r.item_id for r in src.scan_unit("general/2024-03-01.json").refs}
    assert again == ids | {f"slack:C1:{ts('2024-03-01', 13)}"}
    # a renamed user changes every unit's stamp: names are part of the text
    (folder / "users.json").write_text(json.dumps([*USERS, {"id": "U9", "name": "zed"}]))
    assert all(dict(src.units())[u] != s for u, s in after.items())


def test_a_new_export_zip_rereads_only_the_days_that_changed(tmp_path: Path) -> None:
    """Each export is a new zip (new mtime and offsets): a day's stamp is its member's
    CRC and size, so an incremental scan re-reads only the days whose JSON changed."""
    folder = write_export(tmp_path / "export")
    src = source(zip_of(folder, tmp_path / "export.zip"))
    before = dict(src.units())
    messages = [*DAY2, {"type": "message", "user": "U1", "text": "new", "ts": ts("2024-03-02", 10)}]
    (folder / "random/2024-03-02.json").write_text(json.dumps(messages))
    (folder / "random/2024-03-03.json").write_text(json.dumps(DAY2))
    (tmp_path / "export.zip").unlink()
    after = dict(source(zip_of(folder, tmp_path / "export.zip")).units())
    assert after["general/2024-03-01.json"] == before["general/2024-03-01.json"]
    assert after["random/2024-03-02.json"] != before["random/2024-03-02.json"]
    assert set(after) - set(before) == {"random/2024-03-03.json"}


def test_bad_input_names_file_and_place(tmp_path: Path) -> None:
    days = {
        "general/2024-03-01.json": [
            {"type": "message", "user": "U1", "text": "no time"},
            "junk",
            {"user": "U1", "text": "ok", "ts": ts("2024-03-01", 9)},
        ],
        "general/2024-03-02.json": "not a list",
    }
    folder = write_export(tmp_path / "export", days)
    (folder / "random").mkdir()
    (folder / "random/2024-03-03.json").write_bytes(
        b'[{"user": "U1", "text": "caf\xe9", "ts": "1709456400.000000"}]'
    )
    (folder / "random/2024-03-04.json").write_text("[{")
    src = source(folder)
    scan = src.scan_unit("general/2024-03-01.json")
    assert [str(p).split("export/")[1] for p in scan.problems] == [
        "general/2024-03-01.json:[0]: no ts (the message's time)",
        "general/2024-03-01.json:[1]: a message is not a JSON object",
    ]
    assert all(p.day is None for p in scan.problems) and len(scan.refs) == 1
    assert "not a list of messages" in str(src.scan_unit("general/2024-03-02.json").problems[0])
    assert "malformed JSON" in str(src.scan_unit("random/2024-03-04.json").problems[0])
    repaired = src.scan_unit("random/2024-03-03.json")
    assert len(repaired.refs) == 1 and len(repaired.repairs) == 1
    item = next(iter(src.load("random/2024-03-03.json", [repaired.refs[0].locator])))
    assert isinstance(item, MemoryItem) and item.text == "caf\ufffd" and item.repaired


def test_a_stale_locator_is_a_bad_record(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    got = list(source(folder).load("general/2024-03-01.json", ["slack:C1:1.0"]))
    assert isinstance(got[0], BadRecord) and "changed since its scan" in str(got[0])


def test_options_and_missing_path_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown slack option"):
        source(tmp_path, colour=True)
    with pytest.raises(ConfigError, match="include_bots must be a bool"):
        source(tmp_path, include_bots="yes")
    with pytest.raises(ConfigError, match="no Slack export"):
        list(source(tmp_path / "missing").units())
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable Slack export zip"):
        list(source(tmp_path / "bad.zip").units())
