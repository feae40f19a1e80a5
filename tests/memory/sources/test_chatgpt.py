"""ChatGPT exports (conversations.json), built here from the export's documented shape:
conversations whose messages hang in a `mapping` tree of nodes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.chatgpt import ChatGptSource

TZ = ZoneInfo("Asia/Tokyo")
T0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC).timestamp()  # 23:00 in Tokyo


def node(
    ident: str,
    parent: str | None,
    role: str | None,
    parts: list[Any] | None,
    at: float | None,
    **content: Any,
) -> dict[str, Any]:
    message = None
    if role is not None:
        body = {"content_type": "text", "parts": parts} if parts is not None else content
        message = {
            "id": ident,
            "author": {"role": role},
            "create_time": at,
            "content": body,
            "metadata": {},
        }
    return {"id": ident, "message": message, "parent": parent, "children": []}


def conversation(cid: str, created: float | None, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"Talk {cid}",
        "create_time": created,
        "update_time": created,
        "conversation_id": cid,
        "mapping": {n["id"]: n for n in nodes},
        "current_node": nodes[-1]["id"],
    }


CONVERSATIONS = [
    conversation(
        "c1",
        T0,
        node("root", None, None, None, None),
        node("sys", "root", "system", [""], None),
        node("q", "sys", "user", ["What is a monad?"], T0 + 10),
        node("a", "q", "assistant", ["A monoid in ", "the category of endofunctors."], T0 + 3600),
        node(
            "img",
            "a",
            "user",
            [
                {"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"},
                "and this picture?",
            ],
            None,
        ),
        node("code", "img", "assistant", None, T0 + 7200, content_type="code", text="print(1)"),
    )
]


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def read(src: ChatGptSource) -> dict[str, MemoryItem]:
    items = {}
    for unit, _ in src.units():
        scan = src.scan_unit(unit)
        assert scan.problems == []
        for got in src.load(unit, [r.locator for r in scan.refs]):
            assert isinstance(got, MemoryItem)
            items[got.item_id] = got
    return items


def source(path: Path) -> ChatGptSource:
    return ChatGptSource(name="gpt", path=path, tz=TZ, options={})


def test_messages_of_the_tree_with_text_parts_and_fallback_times(tmp_path: Path) -> None:
    items = read(source(write(tmp_path / "conversations.json", CONVERSATIONS)))
    assert sorted(items) == ["chatgpt:c1:a", "chatgpt:c1:code", "chatgpt:c1:img", "chatgpt:c1:q"]
    assert items["chatgpt:c1:a"].text == "A monoid in \n\nthe category of endofunctors."
    assert items["chatgpt:c1:a"].meta == {"conversation": "Talk c1", "role": "assistant"}
    assert items["chatgpt:c1:a"].day == date(2024, 3, 2)  # 00:00 in Tokyo
    assert items["chatgpt:c1:q"].day == date(2024, 3, 1)
    image = items["chatgpt:c1:img"]
    assert image.text == "and this picture?" and image.meta["skipped_parts"] == 1
    assert image.ts == datetime(
        2024, 3, 1, 14, 0, tzinfo=UTC
    )  # null create_time: the conversation's
    assert items["chatgpt:c1:code"].text == "print(1)"
    assert items["chatgpt:c1:q"].title == "Talk c1 (user)"


def test_the_export_folder_is_a_path_too(tmp_path: Path) -> None:
    write(tmp_path / "conversations.json", CONVERSATIONS)
    assert len(read(source(tmp_path))) == 4


def test_undated_messages_and_broken_conversations_name_their_place(tmp_path: Path) -> None:
    broken = [
        conversation("c2", None, node("m", None, "user", ["when?"], None)),
        {"title": "no mapping"},
        "junk",
    ]
    path = write(tmp_path / "conversations.json", broken)
    scan = source(path).scan_unit("conversations.json")
    assert [str(p) for p in scan.problems] == [
        f"{path}:[0].mapping.m: no create_time, and none on its conversation",
        f"{path}:[1]: a conversation without a mapping",
        f"{path}:[2]: a conversation without a mapping",
    ]
    assert all(p.day is None for p in scan.problems)


def test_an_appended_message_keeps_the_other_ids_and_hashes(tmp_path: Path) -> None:
    path = write(tmp_path / "conversations.json", CONVERSATIONS)
    src = source(path)
    before = {r.item_id: r.content_hash for r in src.scan_unit("conversations.json").refs}
    grown = json.loads(json.dumps(CONVERSATIONS))
    grown[0]["mapping"]["more"] = node("more", "code", "user", ["thanks"], T0 + 9000)
    write(path, grown)
    after = {r.item_id: r.content_hash for r in src.scan_unit("conversations.json").refs}
    assert after == {**before, "chatgpt:c1:more": after["chatgpt:c1:more"]}


def test_non_utf8_bytes_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_bytes(json.dumps(CONVERSATIONS).encode().replace(b"What is", b"What\xfe is"))
    scan = source(path).scan_unit("conversations.json")
    assert len(scan.repairs) == 1 and scan.repairs[0].where == "[0].mapping.q"
    with pytest.raises(ConfigError, match="no ChatGPT conversations"):
        list(source(tmp_path / "elsewhere").units())
