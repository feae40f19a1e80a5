"""verify.py on its own: a job that published three days of the demo's notes (run through
planner, jobs, leases and runtime, jobkit.published) verifies clean; each kind of damage
to its artifacts or to the index is one problem naming its (source, day, stage)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from softcopy.config import Settings, load_settings
from softcopy.db import session_scope
from softcopy.errors import NotFound
from softcopy.ingestion.models import Verification
from softcopy.ingestion.states import Stage
from softcopy.ingestion.verify import verify_job
from softcopy.memory import index
from softcopy.memory.artifacts import artifacts, stage_key
from softcopy.memory.stage import export_path, vectors_path
from tests.ingestion.jobkit import Clock, published

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)  # D1 holds 2 notes, the others 1


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


def verified(settings, engine, clock, job_id: int) -> Verification:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return verify_job(session, settings=settings, job_id=job_id, now=clock())


def index_sql(settings: Settings, sql: str, *args: Any) -> None:
    with index.connect(settings.index_path, write=True) as conn:
        conn.execute(sql, args)


def where(day: date, stage: Stage) -> dict[str, str]:
    return {"source": "notes", "day": day.isoformat(), "stage": str(stage)}


def location(settings: Settings, stage: Stage, day: date) -> str:
    return artifacts(settings).location(stage_key(stage, "notes", day))


def test_a_clean_job_verifies_every_cell_it_completed(settings, engine, clock, job_id) -> None:
    result = verified(settings, engine, clock, job_id)
    assert (result.ok, result.cells_checked, result.problems) == (True, 9, [])
    with Session(engine) as session:
        saved = session.get(Verification, result.id)
        assert saved is not None
        assert (saved.job_id, saved.ok, saved.created_at) == (job_id, True, clock())


def delete_export(settings: Settings) -> dict[str, str]:
    export_path(settings, "notes", D2).unlink()
    return where(D2, Stage.export) | {
        "problem": f"artifact missing: {location(settings, Stage.export, D2)}"
    }


def change_vectors(settings: Settings) -> dict[str, str]:
    vectors_path(settings, "notes", D1).write_bytes(b"garbage")
    return where(D1, Stage.embed) | {
        "problem": f"artifact changed since the checkpoint: {location(settings, Stage.embed, D1)}"
    }


def delete_index_rows(settings: Settings) -> dict[str, str]:
    index_sql(settings, "DELETE FROM docs WHERE source = 'notes' AND day = ?", D3.isoformat())
    return where(D3, Stage.publish) | {
        "problem": "the index holds 0 items for this day, published 1"
    }


def add_index_row(settings: Settings) -> dict[str, str]:
    index_sql(
        settings,
        "INSERT INTO docs(source, day, item_id, ts, title, text, content_hash, vector)"
        " VALUES ('notes', ?, 'extra', '2026-03-02T09:00:00', 't', 'extra', 'h', x'00')",
        D1.isoformat(),
    )
    return where(D1, Stage.publish) | {
        "problem": "the index holds 3 items for this day, published 2"
    }


def change_index_row(settings: Settings) -> dict[str, str]:
    index_sql(
        settings,
        "UPDATE docs SET content_hash = 'other' WHERE source = 'notes' AND day = ?",
        D2.isoformat(),
    )
    return where(D2, Stage.publish) | {
        "problem": "the index holds 1 items for this day, published 1"
        " (other items than were published)"
    }


DAMAGE: dict[str, Callable[[Settings], dict[str, str]]] = {
    "deleted export": delete_export,
    "changed vectors": change_vectors,
    "index rows missing": delete_index_rows,
    "index row extra": add_index_row,
    "index rows changed": change_index_row,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_damage_is_one_problem_naming_its_cell(
    settings, engine, clock, job_id, damage
) -> None:
    expected = DAMAGE[damage](settings)
    result = verified(settings, engine, clock, job_id)
    assert (result.ok, result.cells_checked, result.problems) == (False, 9, [expected])
    with Session(engine) as session:
        saved = session.get(Verification, result.id)
        assert saved is not None and (saved.ok, saved.problems) == (False, [expected])


def test_index_rows_of_a_day_the_job_did_not_publish_are_not_its_problem(
    settings, engine, clock, job_id
) -> None:
    index_sql(
        settings,
        "INSERT INTO docs(source, day, item_id, ts, title, text, content_hash, vector)"
        " VALUES ('notes', '2020-01-01', 'x', '2020-01-01T00:00:00', 't', 'orphan', 'h', x'00')",
    )
    assert verified(settings, engine, clock, job_id).ok  # reconcile's to find (orphan rows)


def test_verify_of_an_unknown_job_is_not_found(settings, engine, clock) -> None:
    with pytest.raises(NotFound):
        verified(settings, engine, clock, 404)
