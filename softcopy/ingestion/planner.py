"""Plans: which cells to (re)do, chosen from coverage by mode, persisted with the
fingerprint of the cells they were made from so a stale plan can be refused later."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from operator import attrgetter
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from softcopy import limits
from softcopy.errors import Conflict, DestructivePlan, MissingFields, NotFound, ReversedRange
from softcopy.ingestion import coverage
from softcopy.ingestion.coverage import STAGE_ORDER, Cell
from softcopy.ingestion.models import (
    CoverageCell,
    CoverageSnapshot,
    IngestionPlan,
    IngestionPlanItem,
    ReconciliationFinding,
    ReconciliationRun,
)
from softcopy.ingestion.states import (
    NEEDS_WORK,
    CellState,
    FindingKind,
    PlanMode,
    PlanStatus,
    Stage,
)
from softcopy.memory.tables import SourceDay

DEFAULT_LOOKBACK_DAYS = 7
WANTED = NEEDS_WORK | {CellState.running}  # a running cell is wanted; run names its holder


@dataclass(frozen=True)
class PlanRequest:
    mode: PlanMode
    sources: list[str]
    stages: list[Stage]
    range_start_day: date | None = None
    range_end_day: date | None = None
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    force: bool = False
    reconciliation_id: int | None = None
    allow_shrink: bool = False  # may the plan remove published items (see `shrinks`)?
    skip_bad_records: bool = False  # its job skips (and counts) unreadable records

    def params(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "stages": [str(s) for s in self.stages],
            "range_start_day": self.range_start_day.isoformat() if self.range_start_day else None,
            "range_end_day": self.range_end_day.isoformat() if self.range_end_day else None,
            "lookback_days": self.lookback_days,
            "force": self.force,
            "reconciliation_id": self.reconciliation_id,
            "allow_shrink": self.allow_shrink,
            "skip_bad_records": self.skip_bad_records,
        }


class StalePlan(Conflict):
    def __init__(self, plan_id: int, changed: list[str]) -> None:
        self.plan_id = plan_id
        self.changed = changed
        shown = "; ".join(changed[:5]) + (
            f"; … {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        super().__init__(
            f"plan {plan_id} is stale: {len(changed)} cells changed since it was made ({shown}); "
            "make a new plan"
        )


class PreviewChanged(Conflict):
    """The cells a previewed (unsaved) plan would run changed before it was saved."""

    def __init__(self, cells: int) -> None:
        super().__init__(
            f"the plan's cells changed since its preview (it would now run {cells}): "
            "preview it again"
        )


@dataclass
class Planned:
    """A plan as made: saved (its `plan.id` and `snapshot` set) or only previewed (both
    None, nothing written), its items in the order `plan_items` reads them back, and
    sentences saying what is true of the cells it did not choose."""

    plan: IngestionPlan
    snapshot: CoverageSnapshot | None
    items: list[PlanItem]
    facts: list[str]


def make_plan(
    session: Session,
    *,
    request: PlanRequest,
    model: str,
    today: date,
    now: datetime,
    present: coverage.Presence | None = None,
    save: bool = True,
    expect_fingerprint: str | None = None,
) -> Planned:
    """Choose the cells; when `save`, persist the coverage they came from and the plan
    (refused with PreviewChanged if `expect_fingerprint` names other cells: a preview
    that went stale). A preview (`save=False`) writes nothing.

    A destructive plan (see `shrinks`) is refused before anything is written, unless the
    request allows shrinking."""
    start, end = _scope(session, request)
    cells = coverage.compute(
        session, sources=request.sources, start=start, end=end, model=model, present=present
    )
    stages = set(request.stages)
    chosen = [c for c in _choose(session, request, cells, today) if c.stage in stages]
    if not request.allow_shrink:
        window = _window(request, today)
        removals = shrinks(session, chosen=chosen, cells=cells, window_start=window)
        if removals:
            raise DestructivePlan(removals)
    chosen.sort(key=attrgetter("source"))  # stable: each source's cells stay in day and stage order
    if len(chosen) == len(cells):  # every cell (their order per source is compute's)
        fingerprint = coverage.whole_fingerprint(session, cells, start=start, end=end)
    else:
        fingerprint = coverage.fingerprint(chosen)
    if expect_fingerprint is not None and fingerprint != expect_fingerprint:
        raise PreviewChanged(len(chosen))
    plan = IngestionPlan(
        created_at=now,
        mode=request.mode,
        status=PlanStatus.ready,
        params=request.params(),
        fingerprint=fingerprint,
        cells=len(chosen),
    )
    facts = explain(session, request, cells=cells, chosen=chosen, today=today)
    if not save:
        return Planned(plan, None, _items(None, [], chosen), facts)
    snapshot = coverage.persist(
        session, cells=cells, sources=request.sources, start=start, end=end, now=now, seconds=0.0
    )
    plan.snapshot_id = snapshot.id
    in_snapshot = request.mode is PlanMode.backfill_range and _snapshot_holds(
        session, snapshot, plan.params, len(chosen)
    )
    if in_snapshot:
        plan.params = {**plan.params, "items": ITEMS_IN_SNAPSHOT}
    session.add(plan)
    session.flush()
    plan_id = plan.id  # read once: an ORM attribute costs per row
    assert plan_id is not None
    if in_snapshot:  # no row to write: the items are numbered as plan_items numbers them
        ids = list(range(1, len(chosen) + 1))
    else:
        ids = _insert_items(session, plan_id, chosen)
    return Planned(plan, snapshot, _items(plan_id, ids, chosen), facts)


ITEMS_IN_SNAPSHOT = "snapshot"
"""A saved plan's params["items"] when its items are not rows of its own but its
snapshot's cells of its states and stages (see `plan_items`)."""


def _snapshot_holds(
    session: Session, snapshot: CoverageSnapshot, params: dict[str, Any], chosen: int
) -> bool:
    """Do the snapshot's cells of a backfill_range plan's states and stages count the
    chosen cells? (They are those cells, chosen by the same rule from the same cells.)"""
    counted = select(func.count()).where(*_snapshot_items(snapshot, params))
    return session.connection().execute(counted).scalar_one() == chosen


ITEM_COLUMNS = ("plan_id", "source", "day", "stage", "state", "expected_digest")


def _insert_items(session: Session, plan_id: int, chosen: list[Cell]) -> list[int]:
    """Write the plan's items in `chosen` order; returns their ids in that order."""
    table = IngestionPlanItem
    coverage.insert_rows(
        session,
        table.__table__,  # type: ignore[arg-type]
        ITEM_COLUMNS,
        [(plan_id, c.source, c.day, str(c.stage), str(c.state), c.expected_digest) for c in chosen],
    )
    # inserted in `chosen` order, so their ids rise in it: one writer inserted them, so
    # they are (as a rule) consecutive, and need not be read one by one
    conn = session.connection()
    first, last, count = conn.execute(
        select(func.min(table.id), func.max(table.id), func.count()).where(table.plan_id == plan_id)
    ).one()
    if count == len(chosen) and (not count or last - first + 1 == count):
        return list(range(first or 0, (last or 0) + 1))[: len(chosen)]
    return list(
        conn.scalars(select(table.id).where(table.plan_id == plan_id).order_by(table.id))  # type: ignore[arg-type]
    )


def _snapshot_items(snapshot: CoverageSnapshot, params: dict[str, Any]) -> list[Any]:
    """WHERE clauses for the snapshot's cells a backfill_range plan with `params` takes:
    those of its stages in the states it redoes (all but empty when forced)."""
    cell = CoverageCell
    states = set(CellState) - {CellState.empty} if params.get("force") else WANTED
    stages = params.get("stages") or [str(s) for s in Stage]
    return [
        cell.lineage == snapshot.lineage,
        cell.source.in_(params.get("sources") or []),  # type: ignore[attr-defined]
        cell.snapshot_id <= snapshot.id,
        or_(cell.ended_by.is_(None), cell.ended_by > snapshot.id),  # type: ignore[union-attr,operator]
        cell.state.in_(sorted(states)),  # type: ignore[attr-defined]
        cell.stage.in_(sorted(Stage(s) for s in stages)),  # type: ignore[attr-defined]
    ]


def _items(plan_id: int | None, ids: list[int], chosen: list[Cell]) -> list[PlanItem]:
    """The chosen cells as the plan's items (ids 0 for an unsaved plan's)."""
    ids = ids or [0] * len(chosen)
    return [
        PlanItem(i, plan_id or 0, c.source, c.day, c.stage, c.state, c.expected_digest)
        for i, c in zip(ids, chosen, strict=True)
    ]


def explain(
    session: Session, request: PlanRequest, *, cells: list[Cell], chosen: list[Cell], today: date
) -> list[str]:
    """What is true of the cells in scope that the plan leaves: a range without data, cells
    all current, work waiting outside catch_up_recent's lookback or after today, stages
    left out. An empty plan says why it is empty; a plan leaving work behind says where."""
    facts: list[str] = []
    wanted = set(request.stages)
    with_data = [c for c in cells if c.state is not CellState.empty]
    if request.mode is PlanMode.backfill_range and not with_data:
        facts.append(_no_data(session, request))
    elif request.mode is PlanMode.repair and not chosen:
        facts.append("the reconciliation flagged no cell of these sources and days to redo")
    elif not chosen and with_data and all(c.state is CellState.current for c in with_data):
        facts.append(f"all {_count(len(with_data), 'cell')} with data are current")
    left: list[Cell] = []  # work in scope the plan leaves: only catch_up_recent leaves any
    if request.mode is PlanMode.catch_up_recent:
        taken = {(c.source, c.day, c.stage) for c in chosen}
        left = [
            c
            for c in with_data
            if c.state in WANTED and c.stage in wanted and (c.source, c.day, c.stage) not in taken
        ]
    if left:
        after = [c for c in left if c.day > today]
        before = [c for c in left if c.day <= today]
        if before:
            facts.append(
                f"{_states(before)} outside the {request.lookback_days}-day lookback, "
                f"oldest {min(c.day for c in before)} — use backfill_range"
            )
        if after:
            facts.append(
                f"{_states(after)} dated after today ({today}), never caught up — "
                "coverage names the records"
            )
    others: list[Cell] = []  # work the plan's stage filter left out, said when it is empty
    if not chosen:
        others = [c for c in with_data if c.state in WANTED and c.stage not in wanted]
    if others:
        stages = sorted({str(c.stage) for c in others}, key=lambda s: STAGE_ORDER[Stage(s)])
        facts.append(f"{_states(others)} of stages not asked for ({', '.join(stages)})")
    return facts


def _no_data(session: Session, request: PlanRequest) -> str:
    """Say where the sources' data is, for a range that has none."""
    first, last = session.execute(
        select(func.min(SourceDay.day), func.max(SourceDay.day)).where(
            SourceDay.source.in_(request.sources)  # type: ignore[attr-defined]
        )
    ).one()
    start, end = request.range_start_day, request.range_end_day
    if last is None:
        return "no source has data yet (the last scan found no items)"
    if start is not None and start > last:
        return f"no source has data after {last}"
    if end is not None and end < first:
        return f"no source has data before {first}"
    return f"no source has data from {start} to {end} (their data spans {first} to {last})"


def _states(cells: list[Cell]) -> str:
    """'3 stale cells' or '2 missing and 1 failed cells'."""
    counts = Counter(str(c.state) for c in cells)
    parts = [f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{joined} {'cell' if len(cells) == 1 else 'cells'}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def check_resume(
    session: Session,
    *,
    plan: IngestionPlan,
    done: set[tuple[str, date, Stage]],
    model: str,
    timezone: tzinfo,
    present: coverage.Presence | None = None,
) -> None:
    """Refuse to resume a job whose cells not yet `done` would now shrink published days
    (its source was truncated or re-pointed since the plan was checked), unless its plan
    allowed shrinking: a resume must not do what a new plan would be refused."""
    assert plan.id is not None
    if plan.params.get("allow_shrink"):
        return
    todo = {(i.source, i.day, i.stage) for i in plan_items(session, plan.id)} - done
    if not todo:
        return
    cells = coverage.compute(
        session,
        sources=sorted({source for source, _, _ in todo}),
        start=min(day for _, day, _ in todo),
        end=max(day for _, day, _ in todo),
        model=model,
        present=present,
    )
    chosen = [c for c in cells if (c.source, c.day, c.stage) in todo]
    window = shrink_window(plan, timezone)
    removals = shrinks(session, chosen=chosen, cells=cells, window_start=window)
    if removals:
        raise DestructivePlan(removals)


def shrink_window(plan: IngestionPlan, timezone: tzinfo) -> date | None:
    """The first day a saved plan may shrink (None: none may): a catch-up's lookback
    window, counted from the day the plan was made (in the home's timezone), whenever its
    job is resumed or publishes; every other mode re-checks no day by design."""
    if plan.mode is not PlanMode.catch_up_recent:
        return None
    made = plan.created_at.astimezone(timezone).date()
    return made - timedelta(days=plan.params.get("lookback_days", DEFAULT_LOOKBACK_DAYS))


@dataclass(slots=True, unsafe_hash=True)
class PlanItem:
    """A plan's cell as read back: IngestionPlanItem's columns, without an ORM object each
    (a ten-year plan has 30,000 of them, and building those was most of its cost). Not
    frozen only because that makes it five times as costly to build: treat it as such."""

    id: int
    plan_id: int
    source: str
    day: date
    stage: Stage
    state: CellState
    expected_digest: str | None


def plan_items(session: Session, plan_id: int) -> list[PlanItem]:
    """A saved plan's items by source (in Python's order of names), day and stage.

    A backfill_range plan's items are its snapshot's cells of its states and stages (a
    plan keeps its snapshot, whose rows never change): writing them again as the plan's
    own 33,000 rows was most of a ten-year plan's cost. Their ids are their numbers in
    the plan, 1 to n in this order. Other plans' items are rows of their own."""
    session.flush()
    conn = session.connection()  # Core rows: no ORM loading per row
    plan = session.get(IngestionPlan, plan_id)
    snapshot = None
    if plan is not None and plan.params.get("items") == ITEMS_IN_SNAPSHOT:
        assert plan.snapshot_id is not None  # a plan refers to its snapshot: never pruned
        snapshot = session.get(CoverageSnapshot, plan.snapshot_id)
    if snapshot is None:
        table = IngestionPlanItem
        columns = [getattr(table, name) for name in PlanItem.__slots__]  # type: ignore[attr-defined]
        rows = conn.execute(
            select(*columns)
            .where(table.plan_id == plan_id)
            .order_by(table.source, table.day, table.id)  # type: ignore[arg-type]
        )
        return [PlanItem(*row) for row in rows]
    assert plan is not None
    cell = CoverageCell
    where = _snapshot_items(snapshot, plan.params)
    items: list[PlanItem] = []
    for source in sorted(plan.params.get("sources") or []):  # chosen's order of sources
        rows = conn.execute(
            select(cell.source, cell.day, cell.stage, cell.state, cell.expected_digest)
            .where(*where, cell.source == source)
            .order_by(cell.day, coverage.STAGE_RANK)
        )
        start = len(items) + 1
        items += [PlanItem(n, plan_id, *row) for n, row in enumerate(rows, start)]
    return items


def check_current(
    session: Session,
    *,
    plan: IngestionPlan,
    model: str,
    present: coverage.Presence | None = None,
) -> None:
    """Refuse a plan whose cells changed since it was made, naming them."""
    assert plan.id is not None
    items = plan_items(session, plan.id)
    if not items:
        return
    now_cells = {
        (c.source, c.day, c.stage): c
        for c in coverage.compute(
            session,
            sources=sorted({i.source for i in items}),
            start=min(i.day for i in items),
            end=max(i.day for i in items),
            model=model,
            present=present,
        )
    }
    changed = []
    for item in items:
        cell = now_cells.get((item.source, item.day, item.stage))
        state = cell.state if cell else CellState.empty
        digest = cell.expected_digest if cell else None
        if state != item.state or digest != item.expected_digest:
            changed.append(f"{item.source} {item.day} {item.stage} (was {item.state}, now {state})")
    if changed:
        raise StalePlan(plan.id, changed)


def _scope(session: Session, request: PlanRequest) -> tuple[date | None, date | None]:
    if request.mode is PlanMode.backfill_range:
        if not request.range_start_day or not request.range_end_day:
            raise MissingFields("backfill_range", ("range_start_day", "range_end_day"))
        ReversedRange.check(request.range_start_day, request.range_end_day)
    limits.LOOKBACK_DAYS.check(request.lookback_days)
    if request.reconciliation_id is not None:  # every face bounds it; any caller may not
        limits.RECONCILIATION_ID.check(request.reconciliation_id)
    return request.range_start_day, request.range_end_day


def _choose(session: Session, request: PlanRequest, cells: list[Cell], today: date) -> list[Cell]:
    if request.mode is PlanMode.backfill_range:
        if request.force:
            return [c for c in cells if c.state is not CellState.empty]
        return [c for c in cells if c.state in WANTED]
    if request.mode is PlanMode.catch_up_recent:
        return _catch_up(cells, today, request.lookback_days)
    return _repair(session, request, cells)


def _catch_up(cells: list[Cell], today: date, lookback_days: int) -> list[Cell]:
    """New days after each source's last published day, plus changed days in the lookback.

    The last published day is the newest day up to today that a publish ever completed,
    current or stale since: a source whose published days all went stale (a truncated
    file, a re-pointed path) still has its history, and only the lookback window of it is
    re-checked. A day after today (a record dated 9999-12-31) is never the last published
    day, so it cannot hide new days. A source never published is caught up whole."""
    last_published: dict[str, date] = {}
    for c in cells:
        if c.stage is Stage.publish and _published(c) is not None and c.day <= today:
            last_published[c.source] = max(c.day, last_published.get(c.source, c.day))
    window_start = today - timedelta(days=lookback_days)
    return [
        c
        for c in cells
        if c.state in WANTED
        and c.day <= today
        and (
            c.source not in last_published
            or c.day > last_published[c.source]
            or c.day >= window_start
        )
    ]


def _window(request: PlanRequest, today: date) -> date | None:
    """The first day a plan was asked to re-check: catch_up_recent's lookback window.
    Other modes name their days one by one (a range, findings), so they have none."""
    if request.mode is PlanMode.catch_up_recent:
        return today - timedelta(days=request.lookback_days)
    return None


def _published(cell: Cell) -> int | None:
    """Items a publish cell's last good run put in the index; None if it never completed
    (a failed attempt keeps the last good run's digests and count)."""
    return cell.items if cell.recorded_digest is not None else None


def shrinks(
    session: Session, *, chosen: list[Cell], cells: list[Cell], window_start: date | None
) -> list[tuple[str, date, int, int]]:
    """(source, day, published, remaining) for each day the chosen cells would shrink.

    A day shrinks when the plan publishes it and the items it would publish now are fewer
    than the publish ledger says the index holds: all of them gone (an emptied day,
    anywhere), or some gone from a day before `window_start` (a day the plan was not asked
    to re-check; with no window, every day). What would be published is the upstream of
    the earliest chosen stage of the day: the source's items now when export is redone,
    else what the stage before it recorded."""
    # only days the index holds items of can shrink: none in a first backfill
    before: dict[tuple[str, date], int] = {}
    for c in chosen:
        if c.stage is Stage.publish:
            published = _published(c)  # a chosen cell is coverage's cell of that key
            if published:
                before[c.source, c.day] = published
    if not before:
        return []
    by_key = {(c.source, c.day, c.stage): c for c in cells if (c.source, c.day) in before}
    earliest: dict[tuple[str, date], Stage] = {}
    for c in chosen:
        if (c.source, c.day) not in before:
            continue
        first = earliest.get((c.source, c.day))
        if first is None or STAGE_ORDER[c.stage] < STAGE_ORDER[first]:
            earliest[(c.source, c.day)] = c.stage
    now = _source_items(session, [key for key in before if earliest[key] is Stage.export])
    removals = []
    for key, published in sorted(before.items()):
        first = earliest[key]
        if first is Stage.export:
            remaining = now.get(key, 0)
        else:  # the stage before the first one redone feeds it what it recorded
            upstream = by_key.get((*key, list(Stage)[STAGE_ORDER[first] - 1]))
            remaining = upstream.items if upstream and upstream.recorded_digest else 0
        outside = window_start is None or key[1] < window_start
        if remaining < published and (remaining == 0 or outside):
            removals.append((key[0], key[1], published, remaining))
    return removals


def _source_items(session: Session, keys: list[tuple[str, date]]) -> dict[tuple[str, date], int]:
    """Items each (source, day) has now, as the last scan found (absent: none)."""
    found: dict[tuple[str, date], int] = {}
    for source in sorted({s for s, _ in keys}):
        days = sorted(d for s, d in keys if s == source)
        for begin in range(0, len(days), 500):
            found.update(
                ((source, day), items)
                for day, items in session.execute(
                    select(SourceDay.day, SourceDay.items).where(
                        SourceDay.source == source, SourceDay.day.in_(days[begin : begin + 500])
                    )
                )
            )
    return found


def _repair(session: Session, request: PlanRequest, cells: list[Cell]) -> list[Cell]:
    run_id = request.reconciliation_id or session.scalar(
        select(ReconciliationRun.id).order_by(ReconciliationRun.id.desc()).limit(1)  # type: ignore[union-attr]
    )
    if run_id is None:
        raise NotFound("reconciliation", "(none yet: reconcile first)")
    if session.get(ReconciliationRun, run_id) is None:
        raise NotFound("reconciliation", run_id)
    flagged = _flagged(
        session.scalars(select(ReconciliationFinding).where(ReconciliationFinding.run_id == run_id))
    )
    order = list(Stage)
    by_key = {(c.source, c.day, c.stage): c for c in cells}
    start, end = request.range_start_day, request.range_end_day
    in_scope = {
        key: stage
        for key, stage in flagged.items()
        if key[0] in request.sources
        and (not start or key[1] >= start)
        and (not end or key[1] <= end)
    }
    chosen = []
    for (source, day), first in sorted(in_scope.items()):
        for stage in order[order.index(first) :]:
            # a day with no data and no ledger (orphan index rows) has no coverage cell:
            # redoing it as an empty day is what clears the index
            empty = Cell(source, day, stage, CellState.empty, None, None, 0)
            chosen.append(by_key.get((source, day, stage), empty))
    return chosen


def _flagged(findings: Iterable[ReconciliationFinding]) -> dict[tuple[str, date], Stage]:
    """The earliest stage to redo per (source, day) a finding names."""
    order = list(Stage)
    flagged: dict[tuple[str, date], Stage] = {}
    for f in findings:
        if f.source is None or f.day is None:
            continue  # dead leases: resume the job, there is no cell to redo
        if f.kind is FindingKind.future_dated:
            continue  # the source must be fixed; redoing the day changes nothing
        stage = f.stage or Stage.export
        key = (f.source, f.day)
        if key not in flagged or order.index(stage) < order.index(flagged[key]):
            flagged[key] = stage
    return flagged
