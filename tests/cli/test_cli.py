"""The CLI: what a person types, what they see, and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from softcopy.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_then_search_finds_demo_items(demo_home: Path, capsys) -> None:
    code, out, _ = run(capsys, "ingest", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(capsys, "memory", "search", "release branch", "--json")
    hits = json.loads(out)
    assert code == 0 and hits
    assert any("release" in (h["title"] + h["snippet"]).lower() for h in hits)
    code, out, _ = run(capsys, "memory", "search", "release", "--source", "mail", "--json")
    assert {h["source"] for h in json.loads(out)} == {"mail"}


def test_stage_primitives_keep_the_ledger(demo_home: Path, capsys) -> None:
    args = ["--source", "chat", "--range-start-day", "2026-03-01", "--range-end-day", "2026-03-31"]
    for stage in ("export", "embed", "publish"):
        code, out, err = run(capsys, "memory", stage, *args, "--json")
        assert code == 0, err
    code, out, _ = run(capsys, "ledger", "list", "--source", "chat", "--stage", "publish", "--json")
    rows = json.loads(out)
    assert rows and {r["done_by"] for r in rows} == {"cli:memory publish"}
    day = rows[0]["day"]
    code, out, _ = run(capsys, "ledger", "show", "chat", day, "--json")
    assert [r["stage"] for r in json.loads(out)] == ["export", "embed", "publish"]


def test_cache_commands(demo_home: Path, capsys) -> None:
    run(capsys, "ingest", "--source", "chat")
    code, out, _ = run(capsys, "cache", "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats[0]["model"].startswith("hashing") and stats[0]["entries"] > 0
    code, out, _ = run(capsys, "cache", "prune", "--json")
    assert json.loads(out) == {"removed": 0}
    code, out, _ = run(capsys, "cache", "clear", "--json")
    assert json.loads(out) == {"removed": stats[0]["entries"]}


def test_source_add_and_list(home: Path, capsys, tmp_path: Path) -> None:
    chat = home / "chat.jsonl"
    chat.write_text('{"time": 1767261600, "body": "hello there"}\n')
    code, _, err = run(
        capsys,
        "source",
        "add",
        "chat",
        "--kind",
        "jsonl",
        "--path",
        "chat.jsonl",
        "-o",
        "ts_field=time",
        "-o",
        "text_field=body",
    )
    assert code == 0, err
    run(capsys, "ingest")
    code, out, _ = run(capsys, "source", "list", "--json")
    (row,) = json.loads(out)
    assert row["options"] == {"ts_field": "time", "text_field": "body"}
    assert row["days"] == 1 and row["first_day"] == "2026-01-01"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["memory", "export", "--source", "nope", "--day", "2026-03-01"], "unknown source 'nope'"),
        (["memory", "export", "--source", "chat", "--day", "2026-13-01"], "bad date '2026-13-01'"),
        (
            [
                "memory",
                "export",
                "--source",
                "chat",
                "--range-start-day",
                "2026-03-10",
                "--range-end-day",
                "2026-03-01",
            ],
            "is before --range-start-day",
        ),
        (["memory", "export", "--source", "chat"], "give --day"),
        (["ledger", "show", "chat", "2020-01-01"], "not found"),
        (["ledger", "show", "chat", "yesterday"], "bad date 'yesterday'"),
        (["source", "add", "x", "--kind", "fax", "--path", "."], "unknown source kind 'fax'"),
        (["source", "add", "x", "--kind", "notes", "--path", "missing"], "no such file"),
        (["memory", "search", "  "], "query is empty"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    demo_home: Path, capsys, argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_failed_day_exits_1_and_names_the_line(demo_home: Path, capsys) -> None:
    with (demo_home / "sources" / "chat.jsonl").open("a") as handle:
        handle.write("not json\n")
    code, _, err = run(capsys, "ingest", "--source", "chat")
    assert code == 1
    assert "chat.jsonl:line" in err


def test_bad_config_is_one_line(home: Path, capsys) -> None:
    (home / "softcopy.toml").write_text("[sources.x\nkind=")
    code, _, err = run(capsys, "source", "list")
    assert code == 2 and "softcopy.toml" in err and len(err.strip().splitlines()) == 1


def test_installed_command_runs_without_traceback(demo_home: Path) -> None:
    softcopy = Path(sys.executable).with_name("softcopy")
    done = subprocess.run(
        [str(softcopy), "memory", "export", "--source", "chat", "--day", "2026-02-30"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: bad date '2026-02-30' for --day: expected YYYY-MM-DD"
