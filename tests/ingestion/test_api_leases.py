"""Through the HTTP API, a job whose worker died is never shown live (issue 8): every route
that reads or claims job state ends it first, and cancelling it ends it at once. The
routes run in a real jupyter_server (pytest-jupyter's `jp_fetch`) with the test's clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session, select
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from softcopy.api import app as api
from softcopy.ingestion import runtime, service
from softcopy.ingestion.models import CellClaim, IngestionJob
from tests.ingestion.test_stuck_jobs import BACKFILL, Clock

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(ctx: service.Context) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"softcopy.api": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
            },
            "SoftcopyAPI": {"home": str(ctx.settings.home)},
        }
    )


@pytest.fixture
def fetch(jp_fetch: Any, jp_serverapp: Any, ctx: service.Context) -> Any:
    """`fetch("GET", "jobs", 3, body=...)` → the status code; the server's context is the
    test's (its clock moves when the test says)."""
    jp_serverapp.web_app.settings[api.CONTEXT_SETTING] = lambda: ctx

    async def call(method: str, *parts: object, body: Any = None) -> int:
        kwargs: dict[str, Any] = {"method": method}
        if method == "POST":
            kwargs["body"] = json.dumps(body or {})
        try:
            response = await jp_fetch("api", "ingestion", *map(str, parts), **kwargs)
        except HTTPClientError as error:
            assert error.response is not None
            response = error.response
        return int(response.code)

    return call


def dead_worker_job(ctx: service.Context) -> int:
    """A job a worker claimed and then stopped heartbeating for longer than the lease."""
    clock = Clock()
    ctx.clock = clock
    service.coverage(ctx)  # a snapshot for GET /coverage, taken while nothing is leased
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="gone:1:dead", job_id=job_id, now=clock())
    clock.advance(ctx.settings.lease_timeout + 1)
    return job_id


ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "list jobs": ("GET", "jobs", None),
    "show job": ("GET", "jobs/{job}", None),
    "logs": ("GET", "jobs/{job}/logs", None),
    "coverage snapshot": ("GET", "coverage", None),  # the newest snapshot, not scanned
    "take coverage": ("POST", "coverage", {}),
    "plan": ("POST", "plans", {"mode": "catch_up_recent"}),
    "reconcile": ("POST", "reconcile", {}),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_every_route_that_reads_job_state_ends_a_dead_workers_job(
    fetch: Any, ctx: service.Context, route: str
) -> None:
    job_id = dead_worker_job(ctx)
    method, path, body = ROUTES[route]
    code = await fetch(method, *path.format(job=job_id).split("/"), body=body)
    assert code in (200, 201), code
    with Session(ctx.engine) as session:  # the raw rows, not a read that expires leases
        job = session.get(IngestionJob, job_id)
        assert job is not None and job.status == "interrupted", (route, job.status)
        assert session.exec(select(CellClaim).where(CellClaim.job_id == job_id)).all() == []


async def test_cancelling_a_dead_workers_job_through_the_api_ends_it_at_once(
    fetch: Any, ctx: service.Context
) -> None:
    job_id = dead_worker_job(ctx)
    assert await fetch("POST", "jobs", job_id, "cancel", body={}) == 200
    with Session(ctx.engine) as session:
        job = session.get(IngestionJob, job_id)
        assert job is not None and job.status == "cancelled"
        assert "worker stopped heartbeating" in (job.error or "")


async def test_a_snapshot_taken_while_the_job_ran_shows_none_of_its_cells_once_it_ended(
    jp_fetch: Any, jp_serverapp: Any, ctx: service.Context
) -> None:
    """GET /coverage serves the newest snapshot; one taken while the job held its cells
    named that job on each. Once the dead worker's job is ended, those cells are read again
    from the persisted rows: none is running, none names the job."""
    jp_serverapp.web_app.settings[api.CONTEXT_SETTING] = lambda: ctx
    clock = Clock()
    ctx.clock = clock
    queued = service.enqueue(ctx, options=BACKFILL)
    assert queued.job is not None and queued.job.job.id is not None
    job_id = queued.job.job.id
    assert runtime.claim(ctx.settings, owner="gone:1:dead", job_id=job_id, now=clock())
    taken = service.coverage(ctx)  # while the job is live
    held = {(c.source, c.day, c.stage) for c in taken.cells if c.job_id == job_id}
    assert held and {c.state for c in taken.cells if c.job_id == job_id} == {"running"}
    clock.advance(ctx.settings.lease_timeout + 1)
    body = json.loads((await jp_fetch("api", "ingestion", "coverage", method="GET")).body)
    assert body["snapshot"]["id"] == taken.snapshot.id  # the same snapshot, not a new one
    assert not [c for c in body["cells"] if c["job_id"] == job_id or c["state"] == "running"]
    assert "running" not in body["totals"] or body["totals"]["running"] == 0
    assert len(body["cells"]) == len(taken.cells)  # every cell is still there, read again
