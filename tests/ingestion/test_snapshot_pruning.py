"""Coverage snapshots are persisted in bulk and pruned: the newest KEEP_SNAPSHOTS stay, and
so does every snapshot a plan refers to (the coverage its cells were chosen from)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from softcopy.ingestion import coverage, service
from softcopy.ingestion.models import CoverageCell, CoverageSnapshot, IngestionPlan
from softcopy.ingestion.states import PlanMode
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
