"""Cell claims live and die with the use case that made them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from softcopy.db import session_scope
from softcopy.errors import Conflict
from softcopy.ingestion import jobs, service
from softcopy.ingestion.models import CellClaim
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY


def backfill_chat() -> service.PlanOptions:
    return service.PlanOptions(
        mode=PlanMode.backfill_range,
        sources=["chat"],
        range_start_day=DEMO_TODAY - timedelta(days=29),
        range_end_day=DEMO_TODAY,
    )


def plan_cells(ctx, plan_id: int) -> list:
    return [(i.source, i.day, i.stage) for i in service.get_plan(ctx, plan_id=plan_id).items]


class Boom(Exception):
    """A use case that fails after it claimed its cells."""


def claims(ctx) -> int:
    with session_scope(ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(CellClaim)) or 0


def test_a_use_case_that_fails_after_claiming_leaves_no_claims(ctx) -> None:
    queued = service.enqueue(ctx, options=backfill_chat())

    assert queued.job is not None and queued.job.job.id is not None
    service.cancel(ctx, job_id=queued.job.job.id)  # ends it and releases its cells
    assert claims(ctx) == 0
    cells = [
        (i.source, i.day, i.stage) for i in service.get_plan(ctx, plan_id=queued.plan.id).items
    ]
    assert cells
    with pytest.raises(Boom), session_scope(ctx.engine) as session:
        # the claims are this transaction's first write (SQLite's SAVEPOINT trap)
        jobs._claim_cells(session, queued.job.job.id, cells, now=ctx.clock(), lease_timeout=60)
        raise Boom
    assert claims(ctx) == 0


def test_a_cell_another_job_holds_is_refused_and_nothing_is_claimed(ctx) -> None:
    first = service.enqueue(ctx, options=backfill_chat())

    assert first.job is not None and first.job.job.id is not None
    held = claims(ctx)
    cells = plan_cells(ctx, first.plan.id)
    with pytest.raises(Conflict), session_scope(ctx.engine) as session:
        jobs._claim_cells(session, first.job.job.id + 1, cells, now=ctx.clock(), lease_timeout=60)
    assert claims(ctx) == held
