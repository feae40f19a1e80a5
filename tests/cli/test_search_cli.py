"""`softcopy memory search`: the README's example, the query language, "no matches",
--explain, --since/--until and one-line errors for malformed queries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from softcopy.cli.main import main
from softcopy.config import add_source, load_settings
from softcopy.memory import index
from softcopy.memory.embedders import HashingEmbedder
from softcopy.memory.items import MemoryItem

ITEMS = [
    ("mail", date(2025, 12, 20), "Re: release plan", "the release plan slipped to January"),
    ("mail", date(2026, 1, 12), "Re: release plan", "release plan: cut the branch Thursday"),
    ("notes", date(2026, 1, 13), "Release plan", "release plan for the spring, draft"),
    ("notes", date(2026, 1, 14), "Garden", "planted garlic before the frost"),
]


@pytest.fixture
def searchable(home: Path) -> Path:
    for name, kind in (("mail", "mbox"), ("notes", "notes")):
        (home / name).mkdir()
        add_source(home, name=name, kind=kind, path=name)
    path = load_settings(home).index_path
    embedder = HashingEmbedder()
    for n, (source, day, title, text) in enumerate(ITEMS):
        ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        item = MemoryItem(f"{source}:{n}", source, ts, day, title, text, {})
        index.replace_day(
            path, source=source, day=day, items=[item], vectors=embedder.embed([f"{title}\n{text}"])
        )
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_readme_example_works(searchable: Path, capsys) -> None:
    argv = ["memory", "search", "release plan", "--k", "5", "--source", "mail"]
    code, out, err = run(capsys, *argv, "--since", "2026-01-01", "--json")
    assert code == 0, err
    assert [h["item_id"] for h in json.loads(out)] == ["mail:1"]
    # --limit is the same option as --k; --range-start-day the same as --since
    code, out, _ = run(
        capsys, *argv[:3], "--limit", "1", "--range-start-day", "2026-01-13", "--json"
    )
    assert code == 0 and [h["item_id"] for h in json.loads(out)] == ["notes:2"]
    code, out, _ = run(capsys, *argv[:3], "--until", "2025-12-31", "--json")
    assert [h["item_id"] for h in json.loads(out)] == ["mail:0"]


def test_no_matches_says_so(searchable: Path, capsys) -> None:
    code, out, _ = run(capsys, "memory", "search", "xyzzy")
    assert code == 0 and out.strip() == "no matches for 'xyzzy'"
    code, out, _ = run(capsys, "memory", "search", "xyzzy", "--json")
    assert code == 0 and json.loads(out) == []


def test_the_query_language_on_the_command_line(searchable: Path, capsys) -> None:
    code, out, _ = run(capsys, "memory", "search", '"release plan" -slipped source:mail', "--json")
    assert code == 0 and [h["item_id"] for h in json.loads(out)] == ["mail:1"]
    code, out, _ = run(capsys, "memory", "search", "garl* until:2026-01-14", "--json")
    assert [h["item_id"] for h in json.loads(out)] == ["notes:3"]


def test_explain_shows_the_text_and_vector_parts(searchable: Path, capsys) -> None:
    code, out, _ = run(capsys, "memory", "search", "release plan", "--explain", "--k", "1")
    assert code == 0
    assert "#1 bm25=-" in out  # the best full-text match and its bm25
    assert "#1 cos=0." in out  # the nearest vector and its cosine
    code, out, _ = run(capsys, "memory", "search", "release plan", "--json", "--k", "1")
    why = json.loads(out)[0]["why"]
    assert why["lexical_rank"] == 1 and why["vector_rank"] >= 1 and 0 < why["cosine"] <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (['release "plan'], 'a phrase is missing its closing "'),
        (["--", "-release"], "nothing to look for"),  # `--`: a query may start with "-"
        (["plan since:2026-02-30"], "since:2026-02-30 is not a day"),
        (["plan source:fax"], "unknown source 'fax'"),
        (
            ["plan", "--since", "2026-02-01", "--until", "2026-01-01"],
            "--until 2026-01-01 is before --since 2026-02-01",
        ),
        (["plan", "--since", "soon"], "bad date 'soon' for --since"),
        (['plan NEAR("a" b) ^x OR AND'], None),  # FTS5 syntax in user text is just words
    ],
)
def test_a_malformed_query_is_one_line_exit_2(
    searchable: Path, capsys, argv: list[str], message: str | None
) -> None:
    code, out, err = run(capsys, "memory", "search", *argv)
    if message is None:
        assert code == 0 and "Traceback" not in err
        return
    assert code == 2, out
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
