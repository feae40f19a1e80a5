"""The notes kind against real folders: plain, Obsidian and Logseq layouts."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import notes
from softcopy.memory.sources.base import ItemRef
from softcopy.memory.sources.notes import NotesSource

NEW_YORK = ZoneInfo("America/New_York")


def source(root: Path, tz: tzinfo = UTC, **options: object) -> NotesSource:
    return NotesSource(name="notes", path=root, tz=tz, options=dict(options))


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_all(src: NotesSource) -> dict[str, tuple[ItemRef, MemoryItem]]:
    """Scan every unit and load its item back, checking the two agree."""
    out = {}
    for unit, _stamp in src.units():
        scan = src.scan_unit(unit)
        assert scan.problems == []
        [ref] = scan.refs
        [item] = list(src.load(unit, [ref.locator]))
        assert isinstance(item, MemoryItem)
        assert (item.item_id, item.day, item.content_hash) == (
            ref.item_id,
            ref.day,
            ref.content_hash,
        )
        out[unit] = (ref, item)
    return out


def items(src: NotesSource) -> dict[str, MemoryItem]:
    return {unit: item for unit, (_ref, item) in read_all(src).items()}


def test_module_names_its_kind() -> None:
    assert (notes.KIND, notes.SOURCE, NotesSource.kind) == ("notes", NotesSource, "notes")


def test_obsidian_vault_as_it_is(tmp_path: Path) -> None:
    write(tmp_path, ".obsidian/app.json", "{}")
    write(tmp_path, ".obsidian/snippets/hidden.md", "# not a note")
    write(tmp_path, ".trash/old.md", "# deleted")
    write(tmp_path, "Daily/2024-03-01.md", "# Standup\n\nShipped #work/release and #idea.\n\n")
    write(
        tmp_path,
        "Projects/Plan.md",
        "---\ntitle: Release plan\ntags: [planning, work]\n---\n\nSteps for #q2.\n",
    )
    got = items(source(tmp_path, NEW_YORK))
    assert sorted(got) == ["Daily/2024-03-01.md", "Projects/Plan.md"]
    daily = got["Daily/2024-03-01.md"]
    assert daily.item_id == "notes:Daily/2024-03-01.md"
    assert daily.source == "notes"
    assert daily.day == date(2024, 3, 1)
    assert daily.ts == datetime(2024, 3, 1, 5, tzinfo=UTC)  # local midnight, as UTC
    assert daily.title == "Standup"
    assert daily.text == "# Standup\n\nShipped #work/release and #idea."
    assert daily.meta == {"path": "Daily/2024-03-01.md", "tags": ["idea", "work/release"]}
    plan = got["Projects/Plan.md"]
    assert plan.title == "Release plan"
    assert plan.text == "Steps for #q2."
    assert plan.meta["tags"] == ["planning", "q2", "work"]


def test_logseq_graph_as_it_is(tmp_path: Path) -> None:
    write(tmp_path, "logseq/config.edn", "{}")
    write(tmp_path, "logseq/bak/pages/Meeting/2024_03_05.md", "- old copy")
    write(tmp_path, "logseq/version-files/base/pages/Meeting.md", "- old")
    write(tmp_path, "journals/2024_03_01.md", "- did things #[[Project X]]\n- met [[Ann]]\n")
    write(
        tmp_path,
        "pages/Meeting.md",
        "title:: Weekly meeting\ndate:: [[Mar 5th, 2024]]\ntags:: [[Project X]], planning\n\n"
        "- agenda\n\t- budget\n",
    )
    write(tmp_path, "pages/Retro.md", "date:: 2024-03-07\n- went well\n")
    got = items(source(tmp_path))
    assert sorted(got) == ["journals/2024_03_01.md", "pages/Meeting.md", "pages/Retro.md"]
    journal = got["journals/2024_03_01.md"]
    assert (journal.day, journal.title) == (date(2024, 3, 1), "2024_03_01")
    assert journal.meta["tags"] == ["Project X"]
    meeting = got["pages/Meeting.md"]
    assert meeting.day == date(2024, 3, 5)
    assert meeting.title == "Weekly meeting"
    assert meeting.text == "- agenda\n\t- budget"
    assert meeting.meta["tags"] == ["Project X", "planning"]
    assert got["pages/Retro.md"].day == date(2024, 3, 7)


def test_folder_named_logseq_without_logseq_files_is_notes(tmp_path: Path) -> None:
    write(tmp_path, "tools/logseq/tips.md", "use it")
    assert [unit for unit, _ in source(tmp_path).units()] == ["tools/logseq/tips.md"]


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("20240301-title.md", date(2024, 3, 1)),
        ("2024-03-01.md", date(2024, 3, 1)),
        ("2024_03_01.md", date(2024, 3, 1)),
        ("Daily 2024-03-01.md", date(2024, 3, 1)),
        ("notes 2024.03.01.txt", date(2024, 3, 1)),
        ("meeting-2024-13-45-2024-03-02.markdown", date(2024, 3, 2)),
    ],
)
def test_day_from_file_name(tmp_path: Path, name: str, day: date) -> None:
    write(tmp_path, name, "body")
    [item] = items(source(tmp_path, NEW_YORK)).values()
    assert item.day == day
    assert item.ts == datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)


def test_zettelkasten_id_gives_day_and_time(tmp_path: Path) -> None:
    write(tmp_path, "202403012230 Idea.md", "an idea")
    [item] = items(source(tmp_path, NEW_YORK)).values()
    assert item.day == date(2024, 3, 1)
    assert item.ts == datetime(2024, 3, 2, 3, 30, tzinfo=UTC)


def test_day_from_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "---\ndate: 2024-03-01\n---\nplain date")
    write(tmp_path, "b.md", '---\ndate: "2024-03-01T23:30:00Z"\n---\nUTC late evening')
    write(tmp_path, "c.md", "---\ndate: 2024-03-02 01:00:00+00:00\n---\nUTC small hours")
    write(tmp_path, "d.md", "---\ndate: 2024-03-01T09:15\n---\nnaive is local")
    got = items(source(tmp_path, NEW_YORK))
    assert {unit: item.day for unit, item in got.items()} == {
        "a.md": date(2024, 3, 1),
        "b.md": date(2024, 3, 1),
        "c.md": date(2024, 3, 1),  # 20:00 the evening before, in New York
        "d.md": date(2024, 3, 1),
    }
    assert got["a.md"].ts == datetime(2024, 3, 1, 5, tzinfo=UTC)
    assert got["b.md"].ts == datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    assert got["d.md"].ts == datetime(2024, 3, 1, 14, 15, tzinfo=UTC)
    assert got["a.md"].text == "plain date"


def test_org_header(tmp_path: Path) -> None:
    write(
        tmp_path,
        "roam/idea.org",
        ":PROPERTIES:\n:ID: 1f2e\n:END:\n#+title: Org idea\n#+DATE: <2024-03-01 Fri 10:30>\n"
        "#+filetags: :emacs:notes:\n\n* Heading\n# a comment, not a title\n",
    )
    write(tmp_path, "plain.org", "#+DATE: 2024-03-04\n* Only headings\n")
    got = items(source(tmp_path))
    idea = got["roam/idea.org"]
    assert (idea.title, idea.day) == ("Org idea", date(2024, 3, 1))
    assert idea.ts == datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
    assert idea.text == "* Heading\n# a comment, not a title"
    assert idea.meta["tags"] == ["emacs", "notes"]
    assert (got["plain.org"].title, got["plain.org"].day) == ("plain", date(2024, 3, 4))


def test_day_falls_back_to_mtime_in_tz(tmp_path: Path) -> None:
    path = write(tmp_path, "undated.md", "no date anywhere")
    mtime = datetime(2024, 3, 1, 3, 0, tzinfo=UTC)  # still 29 February in New York
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    [item] = items(source(tmp_path, NEW_YORK)).values()
    assert (item.day, item.ts) == (date(2024, 2, 29), mtime)


def test_non_utf8_file_is_indexed_repaired_with_a_warning_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-03-01 latin.md", b"caf\xe9 au lait")
    write(tmp_path, "bom.md", "\ufeff# With BOM\ntext".encode())
    src = source(tmp_path)
    scan = src.scan_unit("2024-03-01 latin.md")
    assert scan.problems == []
    [ref] = scan.refs
    [warning] = scan.repairs
    assert (warning.path, warning.day) == (str(path), date(2024, 3, 1))
    assert "U+FFFD" in str(warning) and str(path) in str(warning)
    [again] = list(src.load("2024-03-01 latin.md", [""]))
    assert isinstance(again, MemoryItem) and again.repaired
    assert again.text == "caf\ufffd au lait" and again.content_hash == ref.content_hash
    assert src.scan_unit("bom.md").repairs == []


def test_edit_changes_hash_and_stamp_but_not_id(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-03-01.md", "first draft")
    src = source(tmp_path)
    [(unit, stamp)] = list(src.units())
    [ref] = src.scan_unit(unit).refs
    path.write_text("first draft, with a late addition", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    [(_, new_stamp)] = list(src.units())
    [new_ref] = src.scan_unit(unit).refs
    assert new_stamp != stamp
    assert new_ref.item_id == ref.item_id
    assert new_ref.content_hash != ref.content_hash
    assert new_ref.day == ref.day


def test_stamp_is_mtime_and_size(tmp_path: Path) -> None:
    path = write(tmp_path, "a.md", "12345")
    [(unit, stamp)] = list(source(tmp_path).units())
    assert (unit, stamp) == ("a.md", f"{path.stat().st_mtime_ns}:5")


def test_title_fallbacks_and_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "empty.md", "")
    write(tmp_path, "code.md", "```bash\n# install\n```\n\n# Real title ##\n")
    write(tmp_path, "bare.txt", "just words\n   \n")
    got = items(source(tmp_path))
    assert (got["empty.md"].title, got["empty.md"].text) == ("empty", "")
    assert got["empty.md"].meta == {"path": "empty.md", "tags": []}
    assert got["code.md"].title == "Real title"
    assert (got["bare.txt"].title, got["bare.txt"].text) == ("bare", "just words")


def test_tags_are_sorted_unique_and_skip_lookalikes(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t.md",
        "---\ntags:\n  - beta\n  - '#alpha'\n---\n## Heading\n#alpha again, issue #123, "
        "see https://x.org/#frag and `#code` and [a](#anchor)\n```\n#fenced\n```\n#beta/ #gamma-\n",
    )
    write(tmp_path, "s.md", "---\ntags: one, two three\n---\n")
    got = items(source(tmp_path))
    assert got["t.md"].meta["tags"] == ["alpha", "beta", "gamma"]
    assert got["s.md"].meta["tags"] == ["one", "three", "two"]


def test_rule_at_top_is_not_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "r.md", "---\nA sentence, not YAML.\n---\nmore")
    [item] = items(source(tmp_path)).values()
    assert item.text == "---\nA sentence, not YAML.\n---\nmore"


def test_crlf_is_read_as_lf(tmp_path: Path) -> None:
    write(tmp_path, "w.md", b"---\r\ntitle: Windows\r\n---\r\nline one\r\nline two\r\n")
    [item] = items(source(tmp_path)).values()
    assert (item.title, item.text) == ("Windows", "line one\nline two")


def test_extensions_option(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "md")
    write(tmp_path, "b.ORG", "org")
    write(tmp_path, "c.rst", "rst")
    assert [u for u, _ in source(tmp_path).units()] == ["a.md", "b.ORG"]
    assert [u for u, _ in source(tmp_path, extensions=["org", ".rst"]).units()] == [
        "b.ORG",
        "c.rst",
    ]


def test_bad_options_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown notes option"):
        source(tmp_path, extension=[".md"])
    with pytest.raises(ConfigError, match="extensions"):
        source(tmp_path, extensions=".md")
    with pytest.raises(ConfigError, match="no such notes folder"):
        list(source(tmp_path / "gone").units())


def test_vanished_file_is_a_problem(tmp_path: Path) -> None:
    scan = source(tmp_path).scan_unit("2024-03-01.md")
    assert scan.refs == []
    assert scan.problems[0].reason.startswith("cannot read")
    assert scan.problems[0].day == date(2024, 3, 1)


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("2024-02-30.md", "no such day", "2024-02-30"),
        ("Daily/2024_13_01 plan.md", "no such month", "2024_13_01"),
        ("20240230-idea.md", "a Zettelkasten id on no day", "20240230"),
        ("meeting.md", "---\ndate: 2024-13-45\n---\nbody", "2024-13-45"),
        ("org.org", "#+date: <2024-02-30 Fri>\nbody", "2024-02-30 Fri"),
        ("old.md", "---\ndate: 0024-03-01\n---\nbody", "0024-03-01"),
        # a header date that is no date at all is reported too, not put on the mtime
        ("far.md", "---\ndate: 99999-01-01\n---\nbody", "99999-01-01"),
        ("word.md", "---\ndate: not a date\n---\nbody", "not a date"),
        ("epoch.md", "---\ncreated: 1709287200\n---\nbody", "1709287200"),
        ("logseq.md", "date:: [[someday]]\n- body", "someday"),
        ("hour.md", "---\ndate: 2024-03-03T25:00:00\n---\nbody", "2024-03-03T25:00:00"),
        # with an offset, at the ends of time: no UTC instant (OverflowError, a traceback)
        (
            "first.md",
            "---\ndate: 0001-01-01T00:00:00+01:00\n---\nbody",
            "0001-01-01T00:00:00+01:00",
        ),
        ("last.md", "---\ndate: 9999-12-31T23:00:00-05:00\n---\nbody", "9999-12-31T23:00:00-05:00"),
    ],
)
def test_an_invalid_date_is_a_bad_record_naming_file_and_value_not_the_mtime(
    tmp_path: Path, name: str, text: str, value: str
) -> None:
    path = write(tmp_path, name, text)
    found = source(tmp_path).scan_unit(name)
    assert found.refs == []
    [problem] = found.problems
    assert (problem.path, problem.day) == (str(path), None)  # a problem of the source
    assert repr(value) in problem.reason and "no valid date" in problem.reason
    [again] = list(source(tmp_path).load(name, [""]))
    assert isinstance(again, BadRecord)


def test_what_is_no_attempt_at_a_date_still_falls_back_to_the_mtime(tmp_path: Path) -> None:
    mtime = datetime(2024, 2, 29, 12, tzinfo=UTC)
    for name, text in [
        ("template.md", "---\ndate: {{date}}\n---\nbody"),
        ("templater.md", "---\ncreated: <% tp.file.creation_date() %>\n---\nbody"),
        ("empty.md", "---\ndate: \n---\nbody"),
        ("12345678.md", "an id, not a date"),
        ("20241399.md", "month 13: digits, not a date"),
    ]:
        path = write(tmp_path, name, text)
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    got = items(source(tmp_path))
    assert {unit: item.day for unit, item in got.items()} == dict.fromkeys(got, date(2024, 2, 29))
    assert len(got) == 5


def test_an_invalid_name_date_yields_to_a_valid_date_field(tmp_path: Path) -> None:
    write(tmp_path, "2024-02-30.md", "---\ndate: 2024-02-29\n---\nthe header knows")
    [item] = items(source(tmp_path)).values()
    assert item.day == date(2024, 2, 29)


def test_created_keys_and_the_formats_obsidian_and_logseq_write(tmp_path: Path) -> None:
    """Obsidian's Date & time property, Templater's `created`, the Obsidian Linter's
    `date created` in its default moment.js format, Logseq's `date:: [[Mar 1st, 2024]]`."""
    write(tmp_path, "a.md", "---\ncreated: 2024-03-01T10:00\n---\ntemplater")
    write(tmp_path, "b.md", "---\ndate created: Friday, March 1st 2024, 10:05:00 pm\n---\nlinter")
    write(tmp_path, "c.md", "---\ndate created: Friday, March 1st 2024, 12:30:00 am\n---\nmidnight")
    write(tmp_path, "d.md", "date:: [[Mar 1st, 2024]]\n- a logseq page")
    write(tmp_path, "e.md", "---\ndate: 2024-03-02\ncreated: 2020-01-01\n---\ndate wins")
    got = items(source(tmp_path, NEW_YORK))
    assert got["a.md"].ts == datetime(2024, 3, 1, 15, tzinfo=UTC)
    assert got["b.md"].ts == datetime(2024, 3, 2, 3, 5, tzinfo=UTC)
    assert got["b.md"].day == date(2024, 3, 1)
    assert got["c.md"].ts == datetime(2024, 3, 1, 5, 30, tzinfo=UTC)
    assert got["d.md"].day == date(2024, 3, 1)
    assert got["e.md"].day == date(2024, 3, 2)


def test_logseq_journal_names_and_an_invalid_created_date(tmp_path: Path) -> None:
    write(tmp_path, "journals/2024_03_01.md", "- journal entry")
    write(tmp_path, "pages/p.md", "---\ncreated: 2024-02-30\n---\nno such day")
    src = source(tmp_path, NEW_YORK)
    assert set(dict(src.units())) == {"journals/2024_03_01.md", "pages/p.md"}
    (ref,) = src.scan_unit("journals/2024_03_01.md").refs
    assert ref.day == date(2024, 3, 1)
    (bad,) = src.scan_unit("pages/p.md").problems
    assert "2024-02-30" in str(bad) and bad.day is None
