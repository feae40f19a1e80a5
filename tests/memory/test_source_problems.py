"""Records whose day cannot be told are problems of the source: they fail no day, and every
skipped record is counted once (the days' ledger entries plus the source's undated count)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from softcopy.cli.main import main
from softcopy.config import Settings, load_settings
from softcopy.db import get_engine
from softcopy.ingestion.states import Outcome, Stage
from softcopy.memory import ledger
from softcopy.memory.runner import run_stages

UNDATED = [
    '{"id": "broken", "ts": \n',  # malformed JSON
    '["not", "an", "object"]\n',
    '{"id": "no-ts", "text": "when?"}\n',
]
DATED_BAD = '{"id": "no-text", "ts": "2026-03-20T10:00:00Z"}\n'


def break_chat(settings: Settings, *lines: str) -> None:
    with settings.source("chat").path.open("a") as handle:
        handle.writelines(lines)


def test_an_undated_bad_record_fails_no_day(demo_home: Path) -> None:
    settings = load_settings(demo_home)
    chat = settings.source("chat").path
    first = len(chat.read_bytes().splitlines()) + 1
    break_chat(settings, *UNDATED)
    engine = get_engine(settings.database_url)
    summary = run_stages(settings=settings, engine=engine, stages=[Stage.export], sources=["chat"])
    assert summary.failures == []
    assert not summary.ok  # strict: the run reports them, though no day failed
    assert summary.results and all(r.problems == () for r in summary.results)
    assert [line.split(": ", 1)[0] for line in summary.undated["chat"]] == [
        f"{chat}:line {n}" for n in range(first, first + 3)
    ]
    with Session(engine) as session:
        entries = ledger.entries(session, source="chat", stage=Stage.export)
        assert {e.outcome for e in entries} == {Outcome.ok}
        assert ledger.undated_skips(session, source="chat") == 3


@pytest.mark.parametrize("skip", [True, False])
def test_every_skip_is_counted_once_and_the_sum_is_what_is_printed(
    demo_home: Path, capsys: pytest.CaptureFixture[str], skip: bool
) -> None:
    settings = load_settings(demo_home)
    break_chat(settings, *UNDATED, DATED_BAD)
    argv = ["ingest", "--source", "chat", *(["--skip-bad-records"] if skip else [])]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == (0 if skip else 1)
    printed = [line for line in err.splitlines() if line.startswith("skipped")]
    engine = get_engine(settings.database_url)
    with Session(engine) as session:
        day_skips = sum(e.skipped for e in ledger.entries(session, source="chat"))
        undated = ledger.undated_skips(session, source="chat")
        bad_day = ledger.get(session, source="chat", day=date(2026, 3, 20), stage=Stage.export)
    assert undated == 3
    assert bad_day is not None
    if skip:
        assert day_skips == 1 and bad_day.outcome is Outcome.ok
    else:  # strict: the dated bad record fails its own day only
        assert day_skips == 0 and bad_day.outcome is Outcome.failed
        assert "failed: " in err and "2026-03-20" in err
        assert "--skip-bad-records skips (and counts) unreadable records" in err
    assert len(printed) == day_skips + undated  # one line per skipped record
    export_row = next(line for line in out.splitlines() if "export" in line and "chat" in line)
    cells = [c.strip() for c in export_row.split("│") if c.strip()]
    assert cells[4] == str(day_skips + undated)  # the table's "skipped" column
    assert main(["ledger", "list", "--source", "chat"]) == 0
    assert "chat: 3 more skipped, day unknown" in capsys.readouterr().out
