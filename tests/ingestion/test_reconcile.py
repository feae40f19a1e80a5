"""reconcile.py on its own: after a job published three days of the demo's notes
(jobkit.published: planner, jobs, leases, runtime; no service), a clean home reconciles with
no findings; each kind of damage is one persisted finding naming its (source, day, stage),
and the repair plan made from the run holds exactly the cells to redo. Jobs: a dead lease
and an unclaimed queued job are findings without a cell."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from softcopy.config import Settings, load_settings
from softcopy.db import session_scope
from softcopy.ingestion import planner
from softcopy.ingestion.models import ReconciliationRun
from softcopy.ingestion.reconcile import Finding, findings_of, reconcile
from softcopy.ingestion.states import FindingKind, JobStatus, PlanMode, Stage
from softcopy.memory import artifacts, index
from softcopy.memory.embedders import get_embedder
from softcopy.memory.stage import export_path, vectors_path
from tests.conftest import DEMO_TODAY
from tests.ingestion.jobkit import Cell, Clock, cells, claimed_job, job_row, published, queue_job

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)  # D1 holds 2 notes, the others 1
ORPHAN = date(2020, 1, 1)  # notes has nothing that day


@pytest.fixture
def settings(demo_home: Path) -> Settings:
    """The demo home's settings (its sources), over this test's database."""
    return load_settings(demo_home)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def job_id(settings, engine, clock) -> int:
    return published(settings, engine, clock, source="notes", start=D1, end=D3)


def reconciled(
    settings: Settings, engine: Any, clock: Clock, start: date | None = None
) -> tuple[ReconciliationRun, list[Finding], set[Cell]]:
    """Reconcile the notes, then plan the repair of what it found: the run, its findings and
    the repair plan's cells."""
    with session_scope(engine) as session:
        run, found = reconcile(
            session, settings=settings, sources=["notes"], start=start, end=None, now=clock()
        )
        repair = planner.make_plan(
            session,
            request=planner.PlanRequest(
                mode=PlanMode.repair,
                sources=["notes"],
                stages=list(Stage),
                reconciliation_id=run.id,
            ),
            model=get_embedder(settings.embedder).name,
            today=DEMO_TODAY,
            now=clock(),
            present=partial(artifacts.present_days, settings),
        )
        return run, found, {(i.source, i.day, i.stage) for i in repair.items}


def index_sql(settings: Settings, sql: str, *args: Any) -> None:
    with index.connect(settings.index_path, write=True) as conn:
        conn.execute(sql, args)


def insert_row(settings: Settings, day: date) -> None:
    index_sql(
        settings,
        "INSERT INTO docs(source, day, item_id, ts, title, text, content_hash, vector)"
        " VALUES ('notes', ?, 'extra', ?, 't', 'extra', 'h', x'00')",
        day.isoformat(),
        f"{day.isoformat()}T09:00:00",
    )


def test_a_clean_home_reconciles_with_no_findings(settings, engine, clock, job_id) -> None:
    run, found, repair = reconciled(settings, engine, clock)
    assert (found, run.findings_count, run.drift, repair) == ([], 0, False, set())
    assert (run.sources, run.range_start, run.created_at) == (["notes"], None, clock())
    with Session(engine) as session:
        assert run.id is not None and findings_of(session, run.id) == []


# Each damage: what it does, then the one finding (kind, day, stage) and the repair's cells.
Damage = Callable[[Settings], None]


def delete_export(s: Settings) -> None:
    export_path(s, "notes", D2).unlink()


def garble_vectors(s: Settings) -> None:
    vectors_path(s, "notes", D1).write_bytes(b"garbage")


def delete_index_rows(s: Settings) -> None:
    index_sql(s, "DELETE FROM docs WHERE source = 'notes' AND day = ?", D3.isoformat())


def change_index_row(s: Settings) -> None:
    index_sql(
        s, "UPDATE docs SET content_hash = 'x' WHERE source = 'notes' AND day = ?", D2.isoformat()
    )


def edit_note(s: Settings) -> None:
    note = s.source("notes").path / "Daily" / "2026" / f"{D2.isoformat()}.md"
    note.write_text(note.read_text() + "\nedited after publish\n")


def stages_from(day: date, first: Stage) -> set[Cell]:
    order = list(Stage)
    return {("notes", day, stage) for stage in order[order.index(first) :]}


DAMAGE: dict[str, tuple[Damage, FindingKind, date, Stage]] = {
    "deleted export": (delete_export, FindingKind.missing_artifact, D2, Stage.export),
    "changed vectors": (garble_vectors, FindingKind.corrupted_artifact, D1, Stage.embed),
    "index rows missing": (delete_index_rows, FindingKind.missing_index_rows, D3, Stage.publish),
    "index row extra": (partial(insert_row, day=D1), FindingKind.index_mismatch, D1, Stage.publish),
    "index rows changed": (change_index_row, FindingKind.index_mismatch, D2, Stage.publish),
    "index rows of no publish": (
        partial(insert_row, day=ORPHAN),
        FindingKind.orphan_index_rows,
        ORPHAN,
        Stage.export,
    ),
    "source edited": (edit_note, FindingKind.source_drift, D2, Stage.export),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_damage_is_one_finding_and_the_repair_plan_holds_exactly_its_cells(
    settings, engine, clock, job_id, damage
) -> None:
    do, kind, day, stage = DAMAGE[damage]
    do(settings)
    run, found, repair = reconciled(settings, engine, clock)

    assert [(f.kind, f.source, f.day, f.stage, f.job_id) for f in found] == [
        (kind, "notes", day, stage, None)
    ]
    assert run.findings_count == 1 and run.drift is (kind is FindingKind.source_drift)
    with Session(engine) as session:
        assert run.id is not None
        (row,) = findings_of(session, run.id)
        assert (row.kind, row.source, row.day, row.stage, row.detail) == (
            kind,
            "notes",
            day,
            stage,
            found[0].detail,
        )
    assert repair == stages_from(day, stage)


def test_a_drift_finding_says_how_the_source_changed(settings, engine, clock, job_id) -> None:
    edit_note(settings)
    _, (drift,), _ = reconciled(settings, engine, clock)
    assert drift.detail == "the source changed since publish: 1 edited, 0 added, 0 deleted"


def test_several_damages_make_one_repair_plan_of_their_cells_only(
    settings, engine, clock, job_id
) -> None:
    delete_export(settings)
    garble_vectors(settings)
    delete_index_rows(settings)
    _, found, repair = reconciled(settings, engine, clock)
    assert {(f.kind, f.day) for f in found} == {
        (FindingKind.missing_artifact, D2),
        (FindingKind.corrupted_artifact, D1),
        (FindingKind.missing_index_rows, D3),
    }
    expected = stages_from(D2, Stage.export) | stages_from(D1, Stage.embed)
    assert repair == expected | {("notes", D3, Stage.publish)}


def test_damage_before_the_range_is_not_reported(settings, engine, clock, job_id) -> None:
    garble_vectors(settings)  # D1
    delete_index_rows(settings)  # D3
    run, found, repair = reconciled(settings, engine, clock, start=D2)
    assert [(f.kind, f.day) for f in found] == [(FindingKind.missing_index_rows, D3)]
    assert (run.range_start, repair) == (D2, {("notes", D3, Stage.publish)})


def test_a_dead_lease_is_found_ended_and_left_out_of_the_repair_plan(
    settings, engine, clock
) -> None:
    dead = claimed_job(settings, engine, cells("chat", 2), clock)
    clock.advance(settings.lease_timeout + 1)
    run, found, repair = reconciled(settings, engine, clock)
    assert found == [
        Finding(
            FindingKind.dead_lease,
            f"job {dead}'s worker is gone (no heartbeat, or no process): ended; "
            f"resuming job {dead} continues it",
            job_id=dead,
        )
    ]
    assert job_row(engine, dead).status is JobStatus.interrupted
    assert repair == set()  # no cell: resuming the job is the repair
    with Session(engine) as session:
        assert run.id is not None
        (row,) = findings_of(session, run.id)
        assert (row.kind, row.job_id, row.source, row.day) == (
            FindingKind.dead_lease,
            dead,
            None,
            None,
        )
    _, again, _ = reconciled(settings, engine, clock)
    assert again == []  # ended once: the next run finds nothing


def test_a_live_lease_is_no_finding(settings, engine, clock) -> None:
    live = claimed_job(settings, engine, cells("chat", 1), clock)
    clock.advance(settings.lease_timeout)
    _, found, _ = reconciled(settings, engine, clock)
    assert found == [] and job_row(engine, live).status is JobStatus.running


def test_an_unclaimed_queued_job_is_found_and_left_queued(settings, engine, clock) -> None:
    waiting = queue_job(engine, cells("chat", 1), clock, timeout=settings.lease_timeout)
    clock.advance(timedelta(minutes=12).total_seconds())
    _, found, repair = reconciled(settings, engine, clock)
    assert [(f.kind, f.job_id, f.source) for f in found] == [
        (FindingKind.unclaimed_job, waiting, None)
    ]
    assert "is queued, unclaimed for 12 min" in found[0].detail
    assert job_row(engine, waiting).status is JobStatus.queued and repair == set()


def leftover(final: Path, age: timedelta, clock: Clock) -> Path:
    """A temporary file beside `final`, as a write that died between its temporary write and
    the rename leaves it, last changed `age` before the clock's now."""
    path = final.with_name(f".{final.name}.k3x9q2ab.tmp")
    path.write_bytes(b'{"half": ')
    stamp = (clock() - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_temporary_artifacts_that_dead_writes_left_are_removed_and_told(
    settings, engine, clock, job_id
) -> None:
    old_export = leftover(export_path(settings, "notes", D1), timedelta(hours=2), clock)
    old_vectors = leftover(vectors_path(settings, "notes", D2), timedelta(hours=3), clock)
    writing = leftover(export_path(settings, "notes", D3), timedelta(minutes=1), clock)
    kept = (export_path(settings, "notes", D1), vectors_path(settings, "notes", D2))
    finals = {p: p.read_bytes() for p in kept}
    _, found, repair = reconciled(settings, engine, clock)
    assert [(f.kind, f.source, f.day, f.stage) for f in found] == [
        (FindingKind.leftover_temporary, "notes", None, None)
    ]
    oldest = (clock() - timedelta(hours=3)).astimezone(settings.timezone)
    assert "removed 2 temporary artifacts" in found[0].detail
    assert f"the oldest from {oldest:%Y-%m-%d %H:%M}" in found[0].detail
    assert repair == set()  # no day lost anything: nothing to redo
    assert not old_export.exists() and not old_vectors.exists()
    assert writing.exists()  # a write may still be going on: an hour's grace
    assert {p: p.read_bytes() for p in finals} == finals
    _, again, _ = reconciled(settings, engine, clock)
    assert again == []


def test_a_leftover_of_a_day_before_the_range_is_left_alone(
    settings, engine, clock, job_id
) -> None:
    before = leftover(export_path(settings, "notes", D1), timedelta(hours=2), clock)
    _, found, _ = reconciled(settings, engine, clock, start=D2)
    assert found == [] and before.exists()
