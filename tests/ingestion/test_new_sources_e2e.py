"""Each new source kind through the control plane, on the SQLite and PostgreSQL legs: a
backfill that verifies and reconciles clean, an incremental rescan after an append and an
edit, and bad input under both policies (a strict job fails the bad record's day, naming
file and place; resumed with `skip_bad_records` it finishes, verifies and counts the skip;
an undated record fails no day, and a lenient run skips and counts it too)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from softcopy.config import add_source
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode, Stage
from softcopy.memory import ledger
from softcopy.memory.runner import run_stages
from softcopy.memory.stage import export_path
from tests.memory.sources import test_chatgpt as gpt
from tests.memory.sources import test_slack as sl
from tests.memory.sources import test_telegram as tg

DAYS = (date(2024, 3, 1), date(2024, 3, 5))
NOW = datetime(2024, 3, 6, 12, tzinfo=UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


@dataclass
class Kit:
    """A fixture of one kind: its path, and how to grow it, spoil a day, lose a date."""

    build: Callable[[Path], Path]
    grow: Callable[[Path], None]  # one new item on March 3, one item edited
    spoil: Callable[[Path], None] | None  # a bad record whose day is March 2
    undate: Callable[[Path], None]  # a bad record whose day cannot be told
    # how messages name them: the file and the place in it, as the format says it
    spoiled_at: str
    undated_at: str


# --- slack ------------------------------------------------------------------------------


def slack_msg(day: int, text: str, hour: int = 12) -> dict[str, Any]:
    return {
        "type": "message",
        "user": "U1",
        "text": text,
        "ts": f"{at(day, hour).timestamp():.0f}.000100",
    }


def slack_build(root: Path) -> Path:
    days = {
        "general/2024-03-01.json": [slack_msg(1, "first day"), slack_msg(1, "more", 13)],
        "general/2024-03-02.json": [slack_msg(2, "second day")],
    }
    return sl.write_export(root / "slack", days)


def slack_edit(path: Path, rel: str, change: Callable[[list[Any]], None]) -> None:
    messages = json.loads((path / rel).read_text())
    change(messages)
    (path / rel).write_text(json.dumps(messages))


def slack_grow(path: Path) -> None:
    (path / "general/2024-03-03.json").write_text(json.dumps([slack_msg(3, "third day")]))
    slack_edit(path, "general/2024-03-01.json", lambda m: m[0].update(text="first day, edited"))


SLACK = Kit(
    slack_build,
    slack_grow,
    lambda p: slack_edit(p, "general/2024-03-02.json", lambda m: m.append(slack_msg(2, "clash"))),
    lambda p: slack_edit(p, "general/2024-03-02.json", lambda m: m.append({"text": "when?"})),
    "general/2024-03-02.json:[1]: the id",
    "general/2024-03-02.json:[1]: no ts",
)


# --- telegram ---------------------------------------------------------------------------


def tg_build(root: Path) -> Path:
    chat = {
        "name": "Bob",
        "id": 42,
        "messages": [
            tg.message(1, at(1).isoformat(), "first day"),
            tg.message(2, at(1, 13).isoformat(), ["multi ", {"type": "bold", "text": "part"}]),
            tg.message(3, at(2).isoformat(), "second day"),
        ],
    }
    root.mkdir(exist_ok=True)
    return tg.write(root / "result.json", tg.export(chat))


def tg_edit(path: Path, change: Callable[[list[Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data["chats"]["list"][0]["messages"])
    path.write_text(json.dumps(data))


def tg_grow(path: Path) -> None:
    def change(messages: list[Any]) -> None:
        messages[0]["text"] = "first day, edited"
        messages.append(tg.message(4, at(3).isoformat(), "third day"))

    tg_edit(path, change)


TELEGRAM = Kit(
    tg_build,
    tg_grow,
    lambda p: tg_edit(
        p,
        lambda m: m.append(
            {"type": "message", "date_unixtime": str(int(at(2).timestamp())), "text": "no id"}
        ),
    ),
    lambda p: tg_edit(p, lambda m: m.append({"id": 9, "type": "message", "text": "no date"})),
    "result.json:chats.list[0].messages[3]: no message id",
    "result.json:chats.list[0].messages[3]: no date",
)


# --- chatgpt ----------------------------------------------------------------------------


def gpt_conv(cid: str, day: int, *texts: str) -> dict[str, Any]:
    nodes = [
        gpt.node(f"{cid}-{n}", None, "user", [t], at(day, 12 + n).timestamp())
        for n, t in enumerate(texts)
    ]
    return gpt.conversation(cid, at(day).timestamp(), *nodes)


def gpt_build(root: Path) -> Path:
    root.mkdir(exist_ok=True)
    return gpt.write(
        root / "conversations.json",
        [gpt_conv("c1", 1, "first day", "more"), gpt_conv("c2", 2, "second day")],
    )


def gpt_edit(path: Path, change: Callable[[list[Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def gpt_grow(path: Path) -> None:
    def change(data: list[Any]) -> None:
        data[0]["mapping"]["c1-0"]["message"]["content"]["parts"] = ["first day, edited"]
        data.append(gpt_conv("c3", 3, "third day"))

    gpt_edit(path, change)


CHATGPT = Kit(
    gpt_build,
    gpt_grow,
    lambda p: gpt_edit(p, lambda d: d.append(gpt_conv("c2", 2, "second day, other text"))),
    lambda p: gpt_edit(
        p,
        lambda d: d.append(gpt.conversation("c9", None, gpt.node("x", None, "user", ["?"], None))),
    ),
    "conversations.json:[2].mapping.c2-0: the id",
    "conversations.json:[2].mapping.x: no create_time",
)


# --- maildir ----------------------------------------------------------------------------


def mail(day: int, subject: str, ident: str) -> bytes:
    return (
        f"From: a@example.com\nSubject: {subject}\nMessage-ID: <{ident}@example.com>\n"
        f"Date: {at(day):%a, %d %b %Y %H:%M:%S} +0000\n\n{subject}, the body.\n"
    ).encode()


def maildir_build(root: Path) -> Path:
    box = root / "Mail"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "cur" / "1.M1.host:2,S").write_bytes(mail(1, "first day", "m1"))
    (box / "cur" / "2.M2.host:2,S").write_bytes(mail(1, "more", "m2"))
    (box / "new" / "3.M3.host").write_bytes(mail(2, "second day", "m3"))
    return box


def maildir_grow(box: Path) -> None:
    (box / "new" / "4.M4.host").write_bytes(mail(3, "third day", "m4"))
    (box / "cur" / "1.M1.host:2,S").write_bytes(mail(1, "first day, edited", "m1"))


MAILDIR = Kit(
    maildir_build,
    maildir_grow,
    None,  # every bad message of a Maildir is undated: its Date is what is missing
    lambda box: (box / "new" / "x.M9.host").write_bytes(b"From: a@example.com\n\nno date\n"),
    "",
    "Mail/new/x.M9.host: no Date header",
)


# --- browser ----------------------------------------------------------------------------


def places(path: Path, rows: list[tuple[int, str, str, int | None]]) -> None:
    """(visit id, url, title, visit time in Unix µs) into a places.sqlite, made if need be."""
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS moz_places (id INTEGER PRIMARY KEY, url TEXT, title TEXT)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS moz_historyvisits (id INTEGER PRIMARY KEY,"
            " from_visit INTEGER, place_id INTEGER, visit_date INTEGER, visit_type INTEGER)"
        )
        for visit, url, title, when in rows:
            db.execute("INSERT OR REPLACE INTO moz_places VALUES (?, ?, ?)", (visit, url, title))
            db.execute(
                "INSERT OR REPLACE INTO moz_historyvisits VALUES (?, 0, ?, ?, 1)",
                (visit, visit, when),
            )
        db.commit()


def us(day: int, hour: int = 12) -> int:
    return int(at(day, hour).timestamp() * 1_000_000)


def browser_build(root: Path) -> Path:
    root.mkdir(exist_ok=True)
    path = root / "places.sqlite"
    places(
        path,
        [
            (1, "https://a.example/", "first day", us(1)),
            (2, "https://b.example/", "more", us(1, 13)),
            (3, "https://c.example/", "second day", us(2)),
        ],
    )
    return path


BROWSER = Kit(
    browser_build,
    lambda p: places(
        p,
        [
            (1, "https://a.example/", "first day, edited", us(1)),
            (4, "https://d.example/", "third day", us(3)),
        ],
    ),
    lambda p: places(p, [(5, "https://c.example/", "second day, other title", us(2))]),
    lambda p: places(p, [(6, "https://e.example/", "no time", None)]),
    "places.sqlite:moz_historyvisits id 5: the id",
    "places.sqlite:moz_historyvisits id 6: no visit time",
)

KITS = {
    "slack": SLACK,
    "telegram": TELEGRAM,
    "chatgpt": CHATGPT,
    "maildir": MAILDIR,
    "browser": BROWSER,
}


# --- the runs ---------------------------------------------------------------------------


def context(home: Path, kind: str) -> tuple[service.Context, Path]:
    path = KITS[kind].build(home / "data")
    add_source(home, name=kind, kind=kind, path=path)
    ctx = service.open_context(home)
    ctx.clock = lambda: NOW
    return ctx, path


def backfill(ctx: service.Context, kind: str) -> service.RunOutcome:
    options = service.PlanOptions(
        mode=PlanMode.backfill_range, sources=[kind], range_start_day=DAYS[0], range_end_day=DAYS[1]
    )
    return service.run(ctx, options=options)


def exported(ctx: service.Context, kind: str) -> dict[date, list[str]]:
    """Day → titles and texts of the exported items, as written."""
    out = {}
    for n in range(1, 6):
        day = date(2024, 3, n)
        path = export_path(ctx.settings, kind, day)
        if path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines()]
            out[day] = sorted(r["text"] for r in records)
    return out


def ran_ok(outcome: service.RunOutcome) -> int:
    assert outcome.job is not None
    assert outcome.job.job.status is JobStatus.succeeded, outcome.job.job.error
    assert outcome.job.job.id is not None
    return outcome.job.job.id


@pytest.mark.parametrize("kind", sorted(KITS))
def test_backfill_verify_reconcile_then_an_incremental_rescan(home: Path, kind: str) -> None:
    ctx, path = context(home, kind)
    job_id = ran_ok(backfill(ctx, kind))
    assert service.verify(ctx, job_id=job_id).ok
    assert service.reconcile(ctx, sources=[kind]).run.findings_count == 0
    first = exported(ctx, kind)
    assert [len(first.get(date(2024, 3, n), [])) for n in (1, 2, 3)] == [2, 1, 0]
    assert any("first day" in text for text in first[date(2024, 3, 1)])

    KITS[kind].grow(path)
    outcome = backfill(ctx, kind)
    job_id = ran_ok(outcome)
    assert service.verify(ctx, job_id=job_id).ok
    assert _days_of(ctx, outcome) == {date(2024, 3, 1), date(2024, 3, 3)}
    after = exported(ctx, kind)
    assert any("first day, edited" in text for text in after[date(2024, 3, 1)])
    assert any("third day" in text for text in after[date(2024, 3, 3)])
    assert after[date(2024, 3, 2)] == first[date(2024, 3, 2)]
    assert service.reconcile(ctx, sources=[kind]).run.findings_count == 0
    assert backfill(ctx, kind).job is None  # nothing changed: nothing to do


def _days_of(ctx: service.Context, outcome: service.RunOutcome) -> set[date]:
    """The days a run's plan held: only what changed is redone."""
    assert outcome.plan.id is not None
    return {item.day for item in service.get_plan(ctx, plan_id=outcome.plan.id).items}


@pytest.mark.parametrize("kind", sorted(k for k, kit in KITS.items() if kit.spoil))
def test_a_bad_record_fails_its_day_strictly_and_is_skipped_when_asked(
    home: Path, kind: str
) -> None:
    ctx, path = context(home, kind)
    spoil = KITS[kind].spoil
    assert spoil is not None
    spoil(path)
    outcome = backfill(ctx, kind)
    assert outcome.job is not None and outcome.job.job.status is JobStatus.failed
    error = outcome.job.job.error or ""
    assert "2024-03-02" in error and f"/{KITS[kind].spoiled_at}" in error, error
    # the control plane's lenient policy: the job resumed skipping bad records finishes,
    # verifies, and the day holds its readable item only
    assert outcome.job.job.id is not None
    resumed = service.resume(ctx, job_id=outcome.job.job.id, skip_bad_records=True)
    assert resumed.job.status is JobStatus.succeeded, resumed.job.error
    assert service.verify(ctx, job_id=outcome.job.job.id).ok
    (second,) = exported(ctx, kind)[date(2024, 3, 2)]
    assert "second day" in second and "other" not in second and "clash" not in second
    with Session(ctx.engine) as session:  # counted in the day's ledger entry
        entry = ledger.get(session, source=kind, day=date(2024, 3, 2), stage=Stage.export)
    assert entry is not None and entry.skipped == 1
    summary = run_stages(
        settings=ctx.settings,
        engine=ctx.engine,
        stages=[Stage.export],
        sources=[kind],
        start=DAYS[0],
        end=DAYS[1],
        skip_bad_records=True,
    )
    assert summary.ok and summary.skipped(kind, Stage.export) == 1


@pytest.mark.parametrize("kind", sorted(KITS))
def test_an_undated_record_fails_no_day_and_is_a_source_problem(home: Path, kind: str) -> None:
    ctx, path = context(home, kind)
    KITS[kind].undate(path)
    ran_ok(backfill(ctx, kind))
    report = service.coverage(ctx, sources=[kind])
    assert [(p.source, p.day, p.repaired) for p in report.problems] == [(kind, None, False)]
    (problem,) = report.problems
    assert f"/{KITS[kind].undated_at}" in f"{problem.location}: {problem.reason}"
    strict = run_stages(
        settings=ctx.settings,
        engine=ctx.engine,
        stages=[Stage.export],
        sources=[kind],
        start=DAYS[0],
        end=DAYS[1],
    )
    assert not strict.ok and not strict.failures
    lenient = run_stages(
        settings=ctx.settings,
        engine=ctx.engine,
        stages=[Stage.export],
        sources=[kind],
        start=DAYS[0],
        end=DAYS[1],
        skip_bad_records=True,
    )
    assert lenient.ok and lenient.skipped(kind, Stage.export) == 1


def test_each_kind_is_added_and_listed_by_the_cli(home: Path, capsys) -> None:
    from softcopy.cli.main import main

    for kind, kit in sorted(KITS.items()):
        path = kit.build(home / kind)
        argv = ["source", "add", kind, "--kind", kind, "--path", str(path.relative_to(home))]
        if kind == "slack":
            argv += ["-o", "include_joins=true"]
        assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["ingest", "--json"]) == 0
    capsys.readouterr()
    assert main(["source", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {name: (row["kind"], row["days"]) for name, row in rows.items()} == {
        kind: (kind, 2) for kind in KITS
    }
    assert rows["slack"]["options"] == {"include_joins": True}
    assert (
        main(["source", "add", "x", "--kind", "telegram", "--path", "telegram", "-o", "colour=1"])
        == 0
    )
    capsys.readouterr()
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert "unknown telegram option(s) colour" in err and "Traceback" not in err
