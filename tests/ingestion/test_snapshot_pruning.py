"""Coverage snapshots are persisted in bulk and pruned: the newest KEEP_SNAPSHOTS stay, and
so does every snapshot a plan refers to (the coverage its cells were chosen from)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from softcopy.ingestion import coverage, planner, service
from softcopy.ingestion.models import (
    CoverageCell,
    CoverageSnapshot,
    IngestionPlan,
    IngestionPlanItem,
)
from softcopy.ingestion.states import CellState, PlanMode, Stage
from softcopy.memory.tables import LedgerEntry
from tests.ingestion.test_service import BACKFILL


def snapshots(ctx: service.Context) -> dict[int, int]:
    """snapshot id → how many cells it holds (rows are shared by snapshots of a lineage)."""
    with Session(ctx.engine) as session:
        return {
            s.id: len(coverage.snapshot_cells(session, s))
            for s in session.scalars(select(CoverageSnapshot))
            if s.id is not None
        }


def rows(ctx: service.Context) -> int:
    with Session(ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(CoverageCell)) or 0


def test_old_snapshots_go_and_those_plans_refer_to_stay(ctx: service.Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(coverage, "KEEP_SNAPSHOTS", 3)
    first = service.coverage(ctx)
    planned = service.plan(ctx, options=BACKFILL)  # its own snapshot, which it refers to
    catch_up = service.PlanOptions(mode=PlanMode.catch_up_recent)
    for _ in range(5):
        last = service.coverage(ctx)
    kept = snapshots(ctx)
    assert planned.plan.snapshot_id in kept and first.snapshot.id not in kept
    newest = sorted(kept)[-3:]
    assert set(kept) == {*newest, planned.plan.snapshot_id}
    assert newest[-1] == last.snapshot.id
    assert all(n == len(last.cells) for n in kept.values())  # no snapshot lost its cells
    # nothing changed between them: the coverage snapshots share one row per cell, and
    # the plan's (another range of days: another lineage) has its own
    assert rows(ctx) == len(last.cells) + kept[planned.plan.snapshot_id]
    service.plan(ctx, options=catch_up)
    assert planned.plan.snapshot_id in snapshots(ctx)
    with Session(ctx.engine) as session:
        referred = set(session.scalars(select(IngestionPlan.snapshot_id)))
    assert referred <= set(snapshots(ctx))
    assert service.latest_coverage(ctx) is not None


def test_persisted_cells_read_back_as_computed(ctx: service.Context) -> None:
    """The bulk insert (straight to the driver) stores what coverage computed."""
    report = service.coverage(ctx)
    again = service.latest_coverage(ctx)
    assert again is not None and again.snapshot.id == report.snapshot.id
    assert again.cells == report.cells
    view = service.plan(ctx, options=BACKFILL)
    assert [(i.source, i.day, i.stage, i.state) for i in view.items] == sorted(
        ((c.source, c.day, c.stage, c.state) for c in report.cells),
        key=lambda t: (t[0], t[1]),
    )


def test_a_snapshot_of_unchanged_inputs_shares_rows_and_fingerprint(ctx: service.Context) -> None:
    """A coverage whose sources, ledger and claims did not change writes no cell row and
    takes each source's fingerprint from its head: the same as digesting the cells."""
    first = service.coverage(ctx)
    before = rows(ctx)
    again = service.coverage(ctx)
    assert rows(ctx) == before
    assert again.cells == first.cells
    assert again.snapshot.fingerprint == first.snapshot.fingerprint
    assert again.snapshot.fingerprint == coverage.fingerprint(list(again.cells))
    with Session(ctx.engine) as session:
        whole = coverage.whole_fingerprint(session, again.cells, start=None, end=None)
    assert whole == again.snapshot.fingerprint


def test_snapshot_of_a_plain_list_digests_its_cells(ctx: service.Context) -> None:
    """Cells not as `compute` gave them (no digest of their inputs) are digested: the same
    cells write no row, a changed cell writes its row, the fingerprint is theirs."""
    report = service.coverage(ctx)
    cells = list(report.cells)
    with Session(ctx.engine) as session:
        same = coverage.persist(
            session,
            cells=cells,
            sources=report.snapshot.sources,
            start=None,
            end=None,
            now=report.snapshot.taken_at,
            seconds=0.0,
        )
        session.flush()
        assert same.fingerprint == coverage.fingerprint(cells)
        assert coverage.snapshot_cells(session, same) == cells
        first = cells[0]
        changed = [replace(first, state=CellState.failed), *cells[1:]]
        again = coverage.persist(
            session,
            cells=changed,
            sources=report.snapshot.sources,
            start=None,
            end=None,
            now=report.snapshot.taken_at,
            seconds=0.0,
        )
        session.flush()
        assert again.fingerprint == coverage.fingerprint(changed) != same.fingerprint
        assert coverage.snapshot_cells(session, again) == changed
        assert coverage.snapshot_cells(session, same) == cells
        session.commit()


@pytest.mark.parametrize(
    ("stages", "force"),
    [(None, False), ([Stage.embed, Stage.publish], False), ([Stage.publish], True)],
)
def test_backfill_items_are_the_chosen_cells_in_order(
    ctx: service.Context, stages: list[Stage] | None, force: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill_range plan's items (copied from its snapshot's rows in the database) are
    the cells of its states and stages, with the ids they read back with, in that order."""
    send = coverage.insert_rows

    def no_item_rows(session, table, columns, rows) -> None:  # type: ignore[no-untyped-def]
        assert table.name != "ingestion_plan_item", "a backfill plan's items are copied"
        send(session, table, columns, rows)

    monkeypatch.setattr(coverage, "insert_rows", no_item_rows)
    done = service.plan(ctx, options=BACKFILL)
    assert done.plan.id is not None
    service.run(ctx, plan_id=done.plan.id, executor="inline")
    with Session(ctx.engine) as session:  # one day of one source went stale since
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.stage == Stage.embed)).first()
        assert entry is not None
        entry.input_digest = "old"
        session.add(entry)
        session.commit()
    options = replace(BACKFILL, stages=stages, force=force)
    view = service.plan(ctx, options=options)
    assert view.plan.id is not None
    cells = service.latest_coverage(
        ctx, range_start_day=BACKFILL.range_start_day, range_end_day=BACKFILL.range_end_day
    )
    assert cells is not None
    wanted = set(stages or Stage)
    states = set(CellState) - {CellState.empty} if force else planner.WANTED
    expected = [
        (c.source, c.day, c.stage, c.state, c.expected_digest)
        for c in sorted(cells.cells, key=lambda c: c.source)
        if c.stage in wanted and c.state in states
    ]
    assert expected and (force or len(expected) < len(cells.cells))
    assert [(i.source, i.day, i.stage, i.state, i.expected_digest) for i in view.items] == expected
    assert service.get_plan(ctx, plan_id=view.plan.id).items == view.items  # ids too
    assert view.plan.cells == len(expected)
    with Session(ctx.engine) as session:  # they are its snapshot's cells, not rows of its own
        own = select(func.count()).where(IngestionPlanItem.plan_id == view.plan.id)
        assert session.scalar(own) == 0
    # its snapshot's rows outlive newer snapshots of changed cells and pruning
    monkeypatch.setattr(coverage, "KEEP_SNAPSHOTS", 1)
    for turn in range(3):
        with Session(ctx.engine) as session:
            entry = session.scalars(select(LedgerEntry)).first()
            assert entry is not None
            entry.input_digest = f"turn {turn}"
            session.add(entry)
            session.commit()
        service.plan(ctx, options=options)
    assert service.get_plan(ctx, plan_id=view.plan.id).items == view.items
