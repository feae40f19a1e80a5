"""The fast coverage (one pass per source over Core rows, no ORM objects) gives what the
plain definition gives (DESIGN.md §3), written out here cell by cell as the oracle; and a
snapshot shares its predecessor's unchanged rows, so what each kept snapshot reads back is
exactly what was computed when it was taken. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from softcopy.ingestion import coverage
from softcopy.ingestion.coverage import Cell
from softcopy.ingestion.models import (
    CellClaim,
    CoverageCell,
    CoverageHead,
    CoverageSnapshot,
    IngestionJob,
    IngestionPlan,
)
from softcopy.ingestion.states import CellState, JobStatus, Outcome, PlanMode, PlanStatus, Stage
from softcopy.memory.items import EMPTY_DIGEST
from softcopy.memory.stage import embed_input_digest
from softcopy.memory.tables import LedgerEntry, SourceDay

MODEL = "hash-test"
FIRST = date(2026, 1, 1)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SOURCES = ["notes", "chat"]


def reference(
    session: Session, source: str, start: date | None, end: date | None, gone: set[tuple]
) -> list[Cell]:
    """The definition, one cell at a time: a day with data or a ledger entry has a cell per
    stage; claimed → running; no entry → missing (data) or empty; failed → failed; upstream
    not current or recorded input ≠ expected → stale; a current export/embed cell whose
    recorded artifact is gone (`gone`) → stale, artifact_missing; else current."""

    def keep(day: date) -> bool:
        return (start is None or day >= start) and (end is None or day <= end)

    data = {d.day: d for d in session.scalars(select(SourceDay).where(SourceDay.source == source))}
    ledger = {
        (e.day, e.stage): e
        for e in session.scalars(select(LedgerEntry).where(LedgerEntry.source == source))
    }
    claims = {
        (c.day, c.stage): c.job_id
        for c in session.scalars(select(CellClaim).where(CellClaim.source == source))
    }
    cells = []
    for day in sorted({d for d in data if keep(d)} | {d for d, _ in ledger if keep(d)}):
        row = data.get(day)
        has_data = row is not None and (row.items > 0 or row.problems > 0)
        upstream_output, upstream_current = None, True
        for stage in Stage:
            if stage is Stage.export:
                expected = row.digest if row else EMPTY_DIGEST
            elif upstream_output is None:
                expected = None
            elif stage is Stage.embed:
                expected = embed_input_digest(upstream_output, MODEL)
            else:
                expected = upstream_output
            entry = ledger.get((day, stage))
            lost = False
            if (day, stage) in claims:
                state = CellState.running
            elif entry is None:
                state = CellState.missing if has_data else CellState.empty
            elif entry.outcome is Outcome.failed:
                state = CellState.failed
            elif not upstream_current or entry.input_digest != expected:
                state = CellState.stale
            elif entry.artifact_sha is not None and (source, day, stage) in gone:
                state, lost = CellState.stale, True
            else:
                state = CellState.current
            cells.append(
                Cell(
                    source,
                    day,
                    stage,
                    state,
                    expected,
                    entry.input_digest if entry else None,
                    entry.items if entry else (row.items if row else 0),
                    claims.get((day, stage)),
                    entry.done_by if entry else None,
                    lost,
                )
            )
            upstream_output = entry.output_digest if entry else None
            upstream_current = state is CellState.current
    return cells


def fill(session: Session, rng: random.Random, days: int, job_id: int) -> set[tuple]:
    """Random source days, ledger entries and claims over `days` days of each source, every
    state among them; returns the (source, day, stage) cells whose artifact is gone."""
    gone = set()
    for source in SOURCES:
        for n in range(days):
            day = FIRST + timedelta(days=n)
            kind = rng.random()
            items = 0 if kind < 0.15 else rng.randint(1, 5)
            problems = 1 if kind < 0.05 else 0
            digest = f"d-{source}-{n}-{rng.randint(0, 1)}"
            if kind > 0.1:  # a few days have a ledger but no data now (all deleted)
                row = SourceDay(
                    source=source, day=day, items=items, problems=problems, digest=digest
                )
                session.add(row)
            else:
                digest = EMPTY_DIGEST
            upstream = digest
            for i, stage in enumerate(Stage):
                roll = rng.random()
                if roll < 0.2 - 0.05 * i:
                    break  # not done from here on
                failed = roll > 0.95
                matches = roll < 0.85
                recorded = upstream
                if stage is Stage.embed:
                    recorded = embed_input_digest(upstream, MODEL)
                recorded = recorded if matches else f"old-{roll}"
                output = None if failed and roll > 0.98 else f"o-{source}-{n}-{stage}-{roll:.3f}"
                has_file = stage is not Stage.publish and rng.random() < 0.8
                session.add(
                    LedgerEntry(
                        source=source,
                        day=day,
                        stage=stage,
                        outcome=Outcome.failed if failed else Outcome.ok,
                        input_digest=recorded,
                        output_digest=output,
                        artifact_sha="sha" if has_file else None,
                        items=items,
                        attempted_at=NOW,
                        done_by=f"job:{rng.randint(1, 9)}",
                    )
                )
                if has_file and rng.random() < 0.1:
                    gone.add((source, day, stage))
                if rng.random() < 0.05:
                    session.add(CellClaim(source=source, day=day, stage=stage, job_id=job_id))
                upstream = output or ""
    session.flush()
    return gone


def a_job(session: Session) -> int:
    plan = IngestionPlan(
        created_at=NOW, mode=PlanMode.backfill_range, status=PlanStatus.applied, fingerprint="-"
    )
    session.add(plan)
    session.flush()
    assert plan.id is not None
    job = IngestionJob(
        plan_id=plan.id,
        status=JobStatus.queued,
        executor="inline",
        chunk_days=7,
        created_at=NOW,
        queued_at=NOW,
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    return job.id


def presence(gone: set[tuple]) -> coverage.Presence:
    def present(stage: Stage, source: str, days: list[date]) -> set[date]:
        return {d for d in days if (source, d, stage) not in gone}

    return present


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_coverage_is_the_definition(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    with Session(engine) as session:
        gone = fill(session, rng, 60, a_job(session))
        windows = [(None, None), (FIRST + timedelta(days=10), FIRST + timedelta(days=40))]
        for start, end in windows:
            fast = coverage.compute(
                session,
                sources=SOURCES,
                start=start,
                end=end,
                model=MODEL,
                present=presence(gone),
            )
            slow = [c for s in SOURCES for c in reference(session, s, start, end, gone)]
            assert fast == slow
        states = {c.state for c in fast}
        assert states == set(CellState)  # missing, stale, current, failed, running, empty
        assert any(c.artifact_missing for c in fast)
        # without a presence check, a gone artifact is not looked for
        plain = coverage.compute(session, sources=SOURCES, start=None, end=None, model=MODEL)
        assert not any(c.artifact_missing for c in plain)
        assert plain == [c for s in SOURCES for c in reference(session, s, None, None, set())]


def snapshot(session: Session, cells: list[Cell]) -> CoverageSnapshot:
    return coverage.persist(
        session, cells=cells, sources=SOURCES, start=None, end=None, now=NOW, seconds=0.0
    )


def rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CoverageCell)) or 0


def test_snapshots_share_unchanged_rows_and_read_back_as_taken(engine: Engine) -> None:
    rng = random.Random(7)
    with Session(engine) as session:
        job = a_job(session)
        fill(session, rng, 60, job)

        def now() -> list[Cell]:
            return coverage.compute(session, sources=SOURCES, start=None, end=None, model=MODEL)

        first_cells = now()
        first = snapshot(session, first_cells)
        assert rows(session) == len(first_cells)
        again = snapshot(session, now())  # nothing changed: no row written
        assert rows(session) == len(first_cells)
        assert coverage.snapshot_cells(session, again) == first_cells

        # a source changed: its day's export (and what follows) is stale now; the new
        # snapshot writes only the cells that changed, the old one still reads as it was
        day = session.scalars(select(SourceDay).where(SourceDay.source == "chat")).first()
        assert day is not None
        day.digest = "changed"
        session.add(day)
        session.flush()
        changed_cells = now()
        changed = snapshot(session, changed_cells)
        differ = sum(a != b for a, b in zip(first_cells, changed_cells, strict=True))
        assert differ >= 1
        assert rows(session) == len(first_cells) + differ
        assert coverage.snapshot_cells(session, changed) == changed_cells
        assert coverage.snapshot_cells(session, first) == first_cells
        assert coverage.snapshot_cells(session, again) == first_cells
        assert coverage.snapshot_cells(session, changed, sources=["notes"]) == [
            c for c in changed_cells if c.source == "notes"
        ]

        # a cell that went away (its day has no data and no ledger now) is ended too
        session.execute(delete(CellClaim))
        session.execute(delete(LedgerEntry).where(LedgerEntry.source == "notes"))
        session.execute(delete(SourceDay).where(SourceDay.source == "notes"))
        session.flush()
        emptied = now()
        assert all(c.source == "chat" for c in emptied)
        last = snapshot(session, emptied)
        assert coverage.snapshot_cells(session, last) == emptied
        assert coverage.snapshot_cells(session, changed) == changed_cells


def test_pruning_keeps_every_kept_snapshot_whole(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots taken while cells change, some referred to by plans: after pruning, the
    newest KEEP_SNAPSHOTS and the referred ones read back exactly as taken; rows none of
    them shares are gone."""
    monkeypatch.setattr(coverage, "KEEP_SNAPSHOTS", 3)
    rng = random.Random(11)
    with Session(engine) as session:
        fill(session, rng, 40, a_job(session))
        taken: dict[int, list[Cell]] = {}
        referred = set()
        for turn in range(9):
            notes = select(LedgerEntry).where(LedgerEntry.source == "notes")
            entries = list(session.scalars(notes))
            for entry in rng.sample(entries, 3):  # three cells change each turn
                entry.input_digest = f"turn-{turn}-{rng.random()}"
                session.add(entry)
            session.flush()
            cells = coverage.compute(session, sources=SOURCES, start=None, end=None, model=MODEL)
            made = snapshot(session, cells)
            assert made.id is not None
            taken[made.id] = cells
            if turn in (1, 4):
                plan = IngestionPlan(
                    created_at=NOW,
                    mode=PlanMode.backfill_range,
                    status=PlanStatus.ready,
                    fingerprint="-",
                    snapshot_id=made.id,
                )
                session.add(plan)
                session.flush()
                referred.add(made.id)
        kept = {s.id: s for s in session.scalars(select(CoverageSnapshot))}
        assert set(kept) == set(sorted(taken)[-3:]) | referred
        for snapshot_id, made_snapshot in kept.items():
            assert coverage.snapshot_cells(session, made_snapshot) == taken[snapshot_id]
        needed = {
            (c.source, c.day, c.stage, c.state, c.recorded_digest)
            for snapshot_id in kept
            for c in taken[snapshot_id]
        }
        assert rows(session) == len(needed)  # no row is kept that no snapshot has


def test_a_source_of_changed_inputs_or_code_is_compared_row_by_row(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot takes a source's head rows as its cells only when they were computed
    from the same inputs by the same code; otherwise it compares them row by row (writing
    none when the cells are the same) and the head then names the new inputs."""
    rng = random.Random(3)
    with Session(engine) as session:
        fill(session, rng, 30, a_job(session))

        def now() -> list[Cell]:
            return coverage.compute(session, sources=SOURCES, start=None, end=None, model=MODEL)

        def heads() -> dict[str, str]:
            return dict(session.execute(select(CoverageHead.source, CoverageHead.digest)).all())

        first = now()
        snapshot(session, first)
        taken, written = heads(), rows(session)
        monkeypatch.setattr(coverage, "CODE", "other code")
        again = now()
        assert again == first
        assert again.inputs != first.inputs  # type: ignore[attr-defined]
        made = snapshot(session, again)
        assert rows(session) == written  # the same cells: no row written
        assert heads() != taken and all(heads()[s].startswith(again.inputs[s]) for s in SOURCES)  # type: ignore[attr-defined]
        assert coverage.snapshot_cells(session, made) == again
        assert made.fingerprint == coverage.fingerprint(list(again))
