"""Use cases that look before anything runs: coverage, plans, reconcile."""

from __future__ import annotations

import time
from datetime import date

from sqlalchemy import or_, select
from sqlmodel import Session

from softcopy.db import session_scope
from softcopy.errors import DestructivePlan, NotFound, ReversedRange
from softcopy.ingestion import coverage as coverage_
from softcopy.ingestion import jobs, planner
from softcopy.ingestion import reconcile as reconcile_
from softcopy.ingestion.models import (
    CoverageSnapshot,
    IngestionJob,
    IngestionPlan,
    ReconciliationRun,
)
from softcopy.ingestion.service.context import (
    Context,
    artifact_presence,
    embed_model,
    expire_leases,
    newest,
    refresh_sources,
    source_names,
)
from softcopy.ingestion.service.views import CoverageReport, PlanOptions, PlanView, ReconcileReport
from softcopy.ingestion.states import (
    JOB_LIVE,
    PlanMode,
    PlanStatus,
    Stage,
)


def coverage(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
) -> CoverageReport:
    """Scan the sources (incrementally), compare with the ledger, persist a snapshot."""
    ReversedRange.check(range_start_day, range_end_day)
    names = source_names(ctx, sources)
    expire_leases(ctx)  # a dead worker's cells are not `running`
    with session_scope(ctx.engine) as session:
        began = time.perf_counter()
        refresh_sources(ctx, session, names)  # a scan may parse much: collected as usual
        with coverage_.gc_paused():
            cells = coverage_.compute(
                session,
                sources=names,
                start=range_start_day,
                end=range_end_day,
                model=embed_model(ctx),
                present=artifact_presence(ctx),
            )
            snapshot = coverage_.persist(
                session,
                cells=cells,
                sources=names,
                start=range_start_day,
                end=range_end_day,
                now=ctx.clock(),
                seconds=time.perf_counter() - began,
            )
        future = coverage_.future_days(session, sources=names, today=ctx.today())
        problems, total = coverage_.problems(
            session, sources=names, start=range_start_day, end=range_end_day
        )
    return CoverageReport(
        snapshot=snapshot,
        cells=cells,
        future_days=future,
        problems=problems,
        problems_total=total,
    )


def latest_coverage(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
) -> CoverageReport | None:
    """The newest persisted snapshot that spans these sources and days, its cells cut to
    them; nothing is scanned. None when no snapshot spans them (take one with `coverage`).

    A dead worker's job is ended first, as on every read of job state: the snapshot's
    cells name the jobs that held them, and a face reading it (GET /coverage, the
    dashboard's first paint) must not find them still live. Cheap when no job is leased:
    one indexed read, and psutil is loaded only for a leased job of this host."""
    ReversedRange.check(range_start_day, range_end_day)
    names = source_names(ctx, sources)
    expire_leases(ctx)
    lo, hi = CoverageSnapshot.range_start, CoverageSnapshot.range_end
    spans = [  # an open end of a snapshot spans every day on that side
        lo.is_(None) if range_start_day is None else or_(lo.is_(None), lo <= range_start_day),  # type: ignore[union-attr,operator]
        hi.is_(None) if range_end_day is None else or_(hi.is_(None), hi >= range_end_day),  # type: ignore[union-attr,operator]
    ]
    newest_first = select(CoverageSnapshot).where(*spans).order_by(CoverageSnapshot.id.desc())  # type: ignore[union-attr]
    with Session(ctx.engine) as session:
        snapshots = session.scalars(newest_first.execution_options(yield_per=20))
        found = next((s for s in snapshots if set(names) <= set(s.sources)), None)
        if found is None:
            return None
        cells = coverage_.snapshot_cells(
            session, found, sources=names, start=range_start_day, end=range_end_day
        )
        cells = _without_ended_jobs(ctx, session, cells)
        future = coverage_.future_days(session, sources=names, today=ctx.today())
        problems, total = coverage_.problems(
            session, sources=names, start=range_start_day, end=range_end_day
        )
        return CoverageReport(
            snapshot=found,
            cells=cells,
            future_days=future,
            problems=problems,
            problems_total=total,
        )


def _without_ended_jobs(
    ctx: Context, session: Session, cells: list[coverage_.Cell]
) -> list[coverage_.Cell]:
    """A snapshot taken while a job ran shows the cells it held as running. Once that job has
    ended (its worker died and the read above ended it, or it finished), those cells are
    read again from the persisted rows (the ledger and the scan index; nothing is scanned),
    so no face finds an ended job's cells still held."""
    held = {c.job_id for c in cells if c.job_id is not None}
    if not held:
        return cells
    live_jobs = select(IngestionJob.id).where(
        IngestionJob.id.in_(held),  # type: ignore[union-attr]
        IngestionJob.status.in_(JOB_LIVE),  # type: ignore[attr-defined]
    )
    ended = held - set(session.scalars(live_jobs))
    gone = [c for c in cells if c.job_id in ended]
    if not gone:
        return cells
    with coverage_.gc_paused():
        fresh = coverage_.compute(
            session,
            sources=sorted({c.source for c in gone}),
            start=min(c.day for c in gone),
            end=max(c.day for c in gone),
            model=embed_model(ctx),
            present=artifact_presence(ctx),
        )
    now = {(c.source, c.day, c.stage): c for c in fresh}
    redo = {(c.source, c.day, c.stage) for c in gone}
    return [
        now[key] if key in redo else c
        for c in cells
        if (key := (c.source, c.day, c.stage)) not in redo or key in now
    ]


def plan(ctx: Context, *, options: PlanOptions, expect_fingerprint: str | None = None) -> PlanView:
    """Make and save a plan. With `expect_fingerprint` (a preview's `plan.fingerprint`),
    refuse (planner.PreviewChanged) if its cells are no longer those previewed."""
    expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        made = _planned(ctx, session, options, save=True, expect_fingerprint=expect_fingerprint)
        with coverage_.gc_paused():
            return _view(made)


def preview_plan(ctx: Context, *, options: PlanOptions) -> PlanView:
    """The plan `plan` would make, not saved: no plan, items or snapshot is written (its
    `plan.id` is None). Save it with `plan(..., expect_fingerprint=view.plan.fingerprint)`."""
    expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        made = _planned(ctx, session, options, save=False)
        with coverage_.gc_paused():
            return _view(made)


def get_plan(ctx: Context, *, plan_id: int) -> PlanView:
    with session_scope(ctx.engine) as session:
        found = session.get(IngestionPlan, plan_id)
        if found is None:
            raise NotFound("plan", plan_id)
        return plan_view(session, found)


def reconcile(
    ctx: Context,
    *,
    sources: list[str] | None = None,
    range_start_day: date | None = None,
    range_end_day: date | None = None,
    repair: bool = False,
) -> ReconcileReport:
    ReversedRange.check(range_start_day, range_end_day)
    names = source_names(ctx, sources)
    with session_scope(ctx.engine) as session:
        run_, _ = reconcile_.reconcile(
            session,
            settings=ctx.settings,
            sources=names,
            start=range_start_day,
            end=range_end_day,
            now=ctx.clock(),
        )
        repair_plan, refused = None, None
        if repair and run_.findings_count:
            try:  # refused before the planner writes anything: the findings are kept
                repair_plan = make_plan(
                    ctx,
                    session,
                    PlanOptions(mode=PlanMode.repair, sources=names, reconciliation_id=run_.id),
                )
            except DestructivePlan as error:
                refused = str(error)
            else:
                run_.repair_plan_id = repair_plan.id
                session.add(run_)
        assert run_.id is not None
        return ReconcileReport(run_, reconcile_.findings_of(session, run_.id), repair_plan, refused)


def get_reconciliation(ctx: Context, *, reconciliation_id: int) -> ReconcileReport:
    with session_scope(ctx.engine) as session:
        found = session.get(ReconciliationRun, reconciliation_id)
        if found is None:
            raise NotFound("reconciliation", reconciliation_id)
        plan_ = session.get(IngestionPlan, found.repair_plan_id) if found.repair_plan_id else None
        return ReconcileReport(found, reconcile_.findings_of(session, reconciliation_id), plan_)


def list_plans(
    ctx: Context, *, status: PlanStatus | None = None, limit: int = 20, offset: int = 0
) -> list[IngestionPlan]:
    """Saved plans, newest first (their items: `get_plan`)."""
    return newest(ctx, IngestionPlan, status, limit, offset)


def make_plan(ctx: Context, session: Session, options: PlanOptions) -> IngestionPlan:
    return _planned(ctx, session, options, save=True).plan


def plan_facts(ctx: Context, session: Session, made: IngestionPlan) -> list[str]:
    """What is true of the cells a saved plan left, as of now (for a plan with none: why)."""
    return _planned(ctx, session, options_of(made), save=False).facts


def _planned(
    ctx: Context,
    session: Session,
    options: PlanOptions,
    *,
    save: bool,
    expect_fingerprint: str | None = None,
) -> planner.Planned:
    names = source_names(ctx, options.sources)
    refresh_sources(ctx, session, names)  # a scan may parse much: collected as usual
    with coverage_.gc_paused():
        return planner.make_plan(
            session,
            request=planner.PlanRequest(
                mode=options.mode,
                sources=names,
                stages=options.stages or list(Stage),
                range_start_day=options.range_start_day,
                range_end_day=options.range_end_day,
                lookback_days=options.lookback_days,
                force=options.force,
                reconciliation_id=options.reconciliation_id,
                allow_shrink=options.allow_shrink,
                skip_bad_records=options.skip_bad_records,
            ),
            model=embed_model(ctx),
            today=ctx.today(),
            now=ctx.clock(),
            present=artifact_presence(ctx),
            save=save,
            expect_fingerprint=expect_fingerprint,
        )


def options_of(saved: IngestionPlan) -> PlanOptions:
    p = saved.params
    return PlanOptions(
        mode=saved.mode,
        sources=p.get("sources"),
        stages=[Stage(s) for s in p.get("stages", [])] or None,
        range_start_day=date.fromisoformat(p["range_start_day"])
        if p.get("range_start_day")
        else None,
        range_end_day=date.fromisoformat(p["range_end_day"]) if p.get("range_end_day") else None,
        lookback_days=p.get("lookback_days", planner.DEFAULT_LOOKBACK_DAYS),
        force=p.get("force", False),
        reconciliation_id=p.get("reconciliation_id"),
        allow_shrink=p.get("allow_shrink", False),
        skip_bad_records=p.get("skip_bad_records", False),
    )


def _view(made: planner.Planned) -> PlanView:
    steps = jobs.split_steps(made.items, jobs.DEFAULT_CHUNK_DAYS)
    return PlanView(plan=made.plan, items=made.items, steps=steps, facts=made.facts)


def plan_view(session: Session, made: IngestionPlan) -> PlanView:
    assert made.id is not None
    items = planner.plan_items(session, made.id)
    return PlanView(plan=made, items=items, steps=jobs.split_steps(items, jobs.DEFAULT_CHUNK_DAYS))
