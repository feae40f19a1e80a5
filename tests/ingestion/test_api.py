"""The HTTP API in a real jupyter_server (pytest-jupyter's `jp_fetch`) over a demo home;
jobs run in real detached workers."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

from softcopy import limits
from softcopy.api import app as api
from softcopy.api import params as api_params
from softcopy.api import spec as api_spec
from softcopy.errors import BadDate, Conflict, NotFound, OperationFailed, UserError
from softcopy.ingestion import service
from softcopy.ingestion.models import JobStep
from softcopy.ingestion.planner import StalePlan
from softcopy.ingestion.states import JOB_TERMINAL, JobStatus, PlanMode
from softcopy.ingestion.transitions import IllegalTransition
from tests.conftest import DEMO_TODAY

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parents[2]
DAY1, DAY2 = DEMO_TODAY - timedelta(days=3), DEMO_TODAY - timedelta(days=2)
RANGE = {"range_start_day": DAY1.isoformat(), "range_end_day": DAY2.isoformat()}
BACKFILL = service.PlanOptions(PlanMode.backfill_range, range_start_day=DAY1, range_end_day=DAY2)


@pytest.fixture
def jp_server_config(ctx: service.Context) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {
                    "softcopy.api": True,
                    "jupyter_server_terminals": False,  # pytest-jupyter's default; not ours
                },
                "allow_unauthenticated_access": False,
            },
            "SoftcopyAPI": {"home": str(ctx.settings.home)},
        }
    )


@pytest.fixture
def fetch(jp_fetch: Any, jp_serverapp: Any, ctx: service.Context) -> Any:
    """`fetch("jobs", 3, method=..., body={...})` → (status, JSON) for any status code; the
    server's service context is the test's (its clock is the demo's today)."""
    jp_serverapp.web_app.settings[api.CONTEXT_SETTING] = lambda: ctx

    async def call(*parts: object, body: Any = None, raw: bool = False, **kwargs: Any) -> Any:
        if body is not None:
            kwargs.update(method="POST", body=body if isinstance(body, str) else json.dumps(body))
        elif kwargs.get("method") == "POST":
            kwargs["body"] = ""
        try:
            response: HTTPResponse = await jp_fetch("api", "ingestion", *map(str, parts), **kwargs)
        except HTTPClientError as error:
            assert error.response is not None
            response = error.response
        if raw:
            return response
        return response.code, json.loads(response.body or b"null")

    return call


async def wait_for_job(fetch: Any, job_id: int, timeout: float = 90) -> dict[str, Any]:
    """Poll until the detached worker has finished the job."""
    for _ in range(int(timeout / 0.25)):
        code, view = await fetch("jobs", job_id)
        assert code == 200
        if JobStatus(view["job"]["status"]) in JOB_TERMINAL:
            return view
        await asyncio.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {view['job']}")


def concrete(template: str) -> list[str]:
    return re.sub(r"\{\w+\}", "1", template).strip("/").split("/")


async def test_every_route_requires_the_token(fetch: Any) -> None:
    for template, methods in api.route_methods().items():
        for method in methods:
            extra = {"body": "{}"} if method == "post" else {}
            for header in ({"Authorization": "token wrong"}, {"Authorization": ""}):
                response = await fetch(
                    *concrete(template), method=method.upper(), headers=header, raw=True, **extra
                )
                assert response.code == 403, (template, method, header)


async def test_coverage_snapshot_then_latest(fetch: Any) -> None:
    assert (await fetch("coverage"))[0] == 404  # nothing persisted yet
    code, taken = await fetch("coverage", body={})
    assert code == 201 and taken["totals"]["missing"] == len(taken["cells"]) > 0
    code, latest = await fetch("coverage")
    assert code == 200 and latest["snapshot"]["id"] == taken["snapshot"]["id"]
    code, cut = await fetch("coverage", params={"source": "notes", **RANGE})
    assert code == 200 and cut["snapshot"]["id"] == taken["snapshot"]["id"]
    assert {(c["source"], c["day"]) for c in cut["cells"]} <= {
        ("notes", DAY1.isoformat()),
        ("notes", DAY2.isoformat()),
    }
    assert sum(cut["totals"].values()) == len(cut["cells"]) > 0
    code, ranged = await fetch("coverage", body={"sources": ["chat"], **RANGE})
    assert code == 201 and ranged["snapshot"]["range_start"] == DAY1.isoformat()
    assert (await fetch("coverage"))[1]["snapshot"]["id"] == taken["snapshot"]["id"]  # spans all
    newest = await fetch("coverage", params={"source": "chat", **RANGE})
    assert newest[1]["snapshot"]["id"] == ranged["snapshot"]["id"]  # the newest that spans


COVERAGE_BAD = [
    ({"source": "nope"}, "unknown source 'nope'"),
    ({"range_start_day": "2026-13-01"}, "YYYY-MM-DD"),
    ({"range_start_day": DAY2.isoformat(), "range_end_day": DAY1.isoformat()}, "before"),
]


async def test_coverage_bad_input_is_400(fetch: Any) -> None:
    for params, words in COVERAGE_BAD:
        code, error = await fetch("coverage", params=params)
        assert code == 400 and words in error["message"], (params, error)
        assert error["reason"] == "Bad Request"


async def test_plans(fetch: Any) -> None:
    code, made = await fetch("plans", body={"mode": "backfill_range", **RANGE})
    assert code == 201 and made["plan"]["cells"] == len(made["items"]) > 0
    plan_id = made["plan"]["id"]
    assert made["steps"] and all(len(step) == 3 for step in made["steps"])
    code, listed = await fetch("plans", params={"status": "ready", "limit": "5"})
    assert code == 200 and [p["id"] for p in listed["plans"]] == [plan_id]
    code, shown = await fetch("plans", plan_id)
    assert code == 200 and shown["plan"] == made["plan"]
    code, error = await fetch("plans", 999)
    assert code == 404 and error["error"] == "NotFound" and error["details"]["ident"] == 999


PLAN_BAD = [
    ({"mode": "sideways"}, "one of catch_up_recent"),
    ({}, "'mode' is required"),
    ({"mode": "backfill_range", "colour": "red"}, "unknown field(s) colour"),
    ({"mode": "backfill_range", "force": "maybe"}, "true or false"),
    ({"mode": "backfill_range", "stages": ["bake"]}, "a list of export"),
    ({"mode": "backfill_range", "lookback_days": -1}, "lookback_days: -1 is out of range"),
    ({"mode": "backfill_range"}, "backfill_range needs range_start_day and range_end_day"),
    ('{"mode": ', "not JSON"),
    ("[1, 2]", "JSON object"),
]


async def test_plan_bad_input_is_400(fetch: Any) -> None:
    for body, words in PLAN_BAD:
        code, error = await fetch("plans", body=body)
        assert code == 400 and words in error["message"], (body, error)


async def test_jobs_run_detached_and_every_job_route(fetch: Any, ctx: service.Context) -> None:
    code, made = await fetch("plans", body={"mode": "backfill_range", **RANGE})
    assert code == 201
    held = service.enqueue(ctx, options=BACKFILL).job  # queued, holding the cells; no worker
    assert held is not None and held.job.id is not None
    # "engine", the old name of "executor", is still accepted (the plan is refused as stale)
    code, error = await fetch("jobs", body={"plan_id": made["plan"]["id"], "engine": "inline"})
    assert code == 409 and error["error"] == "StalePlan" and error["details"]["changed"]
    code, cancelled = await fetch("jobs", held.job.id, "cancel", body={})
    assert code == 200 and cancelled["job"]["status"] == "cancelled"

    code, started = await fetch("jobs", body={"plan_id": made["plan"]["id"], "executor": "inline"})
    assert code == 202 and started["worker_pid"] and started["job"]["job"]["status"] == "queued"
    job_id = started["job"]["job"]["id"]
    view = await wait_for_job(fetch, job_id)
    assert view["job"]["status"] == "succeeded", view["job"]["error"]
    assert view["job"]["cells_done"] == view["job"]["cells_total"] == made["plan"]["cells"]
    assert all(s["days_done"] == len(s["step"]["days"]) for s in view["steps"])

    code, listed = await fetch("jobs", params={"status": "succeeded"})
    assert code == 200 and [j["id"] for j in listed["jobs"]] == [job_id]
    code, paged = await fetch("jobs", params={"limit": "1", "offset": "1"})
    assert code == 200 and [j["id"] for j in paged["jobs"]] == [held.job.id]

    code, verification = await fetch("jobs", job_id, "verify", body={})
    assert code == 201 and verification["ok"] and verification["cells_checked"] > 0
    assert (await fetch("jobs", job_id))[1]["verification"]["id"] == verification["id"]

    code, first = await fetch("jobs", job_id, "logs", params={"limit": "2"})
    assert code == 200 and len(first["records"]) == 2
    code, rest = await fetch("jobs", job_id, "logs", params={"since": str(first["next_since"])})
    assert code == 200 and rest["records"][0]["id"] > first["next_since"] - 1
    assert rest["records"][-1]["id"] == rest["next_since"]
    code, errors = await fetch("jobs", job_id, "logs", params={"level": "error"})
    assert code == 200 and errors == {"records": [], "next_since": 0}
    # the newest rows, a page at a time, with counts; older pages by `before`; filters
    code, newest = await fetch("jobs", job_id, "logs", params={"page": "1", "limit": "3"})
    total = newest["total"]
    assert code == 200 and len(newest["records"]) == 3 and newest["older"] == total - 3
    assert newest["records"][-1]["id"] == newest["next_since"]  # the newest row of all
    first_id = str(newest["records"][0]["id"])
    code, older = await fetch("jobs", job_id, "logs", params={"before": first_id, "limit": "3"})
    assert code == 200 and older["older"] == total - 6
    assert older["records"][-1]["id"] < newest["records"][0]["id"]
    code, notes = await fetch("jobs", job_id, "logs", params={"page": "1", "source": "notes"})
    assert code == 200 and 0 < notes["total"] < total
    assert {r["source"] for r in notes["records"]} == {"notes"}
    code, day = await fetch("jobs", job_id, "logs", params={"since": "0", "day": str(DAY1)})
    assert code == 200 and day["records"] and {r["day"] for r in day["records"]} == {str(DAY1)}
    code, error = await fetch("jobs", job_id, "logs", params={"since": "1", "page": "2"})
    assert code == 400 and "since" in error["message"]
    code, error = await fetch("jobs", job_id, "logs", params={"page": "1", "step": "9999"})
    assert code == 404 and "step 9999" in error["message"]

    step_id = view["steps"][0]["step"]["id"]
    code, error = await fetch("jobs", job_id, "steps", step_id, "notebook")
    assert code == 404 and "notebook of step" in error["message"]  # inline keeps none
    assert (await fetch("jobs", job_id, "resume", body={}))[0] == 409
    assert (await fetch("jobs", job_id, "cancel", body={}))[0] == 409
    code, again = await fetch("jobs", body={"mode": "backfill_range", **RANGE})
    assert code == 200 and again["job"] is None  # every cell is current now
    assert (await fetch("jobs", body={"plan_id": made["plan"]["id"]}))[0] == 409  # applied

    code, resumed = await fetch("jobs", held.job.id, "resume", body={})
    assert code == 202 and resumed["job"]["status"] == "queued"
    assert (await wait_for_job(fetch, held.job.id))["job"]["status"] == "succeeded"


JOB_ERRORS = [
    (("jobs", 999), "GET", None, 404),
    (("jobs", 999, "logs"), "GET", None, 404),
    (("jobs", 999, "resume"), "POST", {}, 404),
    (("jobs", 999, "cancel"), "POST", {}, 404),
    (("jobs", 999, "verify"), "POST", {}, 404),
    (("jobs", 999, "steps", 1, "notebook"), "GET", None, 404),
    (("reconciliations", 999), "GET", None, 404),
    (("jobs",), "GET", {"status": "lost"}, 400),
    (("jobs",), "GET", {"limit": "0"}, 400),
    (("jobs",), "GET", {"offset": "x"}, 400),
    (("jobs", 999, "logs"), "GET", {"level": "loud"}, 400),
    (("jobs",), "POST", {}, 400),
    (("jobs",), "POST", {"plan_id": 1, "mode": "repair"}, 400),
    (("jobs",), "POST", {"mode": "backfill_range", "executor": "steam"}, 400),
    (("jobs",), "POST", {"mode": "backfill_range", "engine": "steam"}, 400),
    (
        ("jobs",),
        "POST",
        {"mode": "backfill_range", "executor": "inline", "engine": "notebook"},
        400,
    ),
    (("jobs",), "POST", {"plan_id": 999}, 404),
    (("jobs", 999, "cancel"), "POST", {"force": 2}, 400),
    (("jobs", 999, "resume"), "POST", {"detach": False}, 400),
]


async def test_job_errors(fetch: Any) -> None:
    for parts, method, body, code in JOB_ERRORS:
        if method == "GET":
            got, error = await fetch(*parts, params=body)
        else:
            got, error = await fetch(*parts, body=body)
        assert got == code and error["message"], (parts, method, body, error)


async def test_step_notebook_is_served_only_from_inside_the_home(
    fetch: Any, ctx: service.Context, tmp_path: Path
) -> None:
    queued = service.enqueue(ctx, options=BACKFILL).job
    assert queued is not None and queued.job.id is not None
    job_id, step_id = queued.job.id, queued.steps[0].step.id
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (ctx.settings.home / "artifacts").mkdir()
    (ctx.settings.home / "artifacts" / "step.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "outside.ipynb").write_text(json.dumps(notebook))
    served = {
        "artifacts/step.ipynb": 200,
        str(ctx.settings.home / "artifacts" / "step.ipynb"): 200,
        "../outside.ipynb": 404,
        str(tmp_path / "outside.ipynb"): 404,
        "artifacts/missing.ipynb": 404,
        "/etc/passwd": 404,
    }
    for artifact, code in served.items():
        with Session(ctx.engine) as session:
            step = session.exec(select(JobStep).where(JobStep.id == step_id)).one()
            step.artifact = artifact
            session.add(step)
            session.commit()
        response = await fetch("jobs", job_id, "steps", step_id, "notebook", raw=True)
        assert response.code == code, artifact
        if code == 200:
            assert response.headers["Content-Type"] == api.NOTEBOOK_TYPE
            assert json.loads(response.body) == notebook
            # rendered as a page for the dashboard to show in place
            page = await fetch(
                "jobs", job_id, "steps", step_id, "notebook", params={"format": "html"}, raw=True
            )
            assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
            assert b"<html" in page.body and b"jp-Notebook" in page.body
    pdf = {"format": "pdf"}
    code, error = await fetch("jobs", job_id, "steps", step_id, "notebook", params=pdf)
    assert code == 400 and "format" in error["message"]
    code, _ = await fetch("jobs", job_id, "steps", step_id + 10_000, "notebook")
    assert code == 404


async def test_reconcile_and_get_it_back(fetch: Any) -> None:
    code, report = await fetch("reconcile", body={"sources": ["notes"], "repair": True})
    assert code == 201 and report["run"]["sources"] == ["notes"]
    code, again = await fetch("reconciliations", report["run"]["id"])
    assert code == 200 and again["run"] == report["run"]
    assert len(again["findings"]) == report["run"]["findings_count"]
    code, error = await fetch("reconcile", body={"repair": "please"})
    assert code == 400 and "repair" in error["message"]


async def test_openapi_document_matches_the_routes(fetch: Any, jp_base_url: str) -> None:
    code, doc = await fetch("openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": jp_base_url.rstrip("/") + api.PREFIX}]
    described = {path: set(ops) for path, ops in doc["paths"].items()}
    assert described == api.route_methods()
    for path, ops in doc["paths"].items():
        ids = set(re.findall(r"\{(\w+)\}", path))
        for op in ops.values():
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == ids
            assert "403" in op["responses"]
    schemas = doc["components"]["schemas"]
    bodies = {"PlanRequest": api_params.PLAN_FIELDS, "RunRequest": api_params.RUN_FIELDS}
    for name, fields in bodies.items():
        assert set(schemas[name]["properties"]) == fields
    for ref in set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc))):
        assert ref in schemas, ref


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UserError("x"), 400),
        (BadDate("x"), 400),
        (NotFound("job", 1), 404),
        (Conflict("x"), 409),
        (StalePlan(1, ["a"]), 409),
        (IllegalTransition("job", 1, "succeeded", "running"), 409),
        (OperationFailed("x"), 500),
    ],
)
def test_errors_map_to_status_codes_in_one_place(error: Exception, code: int) -> None:
    assert api.status_of(error) == code  # type: ignore[arg-type]


def test_installed_config_enables_the_extension() -> None:
    config = json.loads((REPO / "etc/jupyter/jupyter_server_config.d/softcopy.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"softcopy.api": True}}}
    (point,) = api._jupyter_server_extension_points()
    assert point == {"module": "softcopy.api", "app": api.SoftcopyAPI}


HUGE = 10**20
OUT_OF_RANGE = [  # (path parts, query, body, field, bound)
    (("jobs", HUGE), None, None, "job_id", limits.JOB_ID),
    (("jobs", 0, "logs"), None, None, "job_id", limits.JOB_ID),
    (("plans", HUGE), None, None, "plan_id", limits.PLAN_ID),
    (("reconciliations", HUGE), None, None, "reconciliation_id", limits.RECONCILIATION_ID),
    (("jobs", 1, "steps", HUGE, "notebook"), None, None, "step_id", limits.STEP_ID),
    (("jobs",), {"limit": str(HUGE)}, None, "limit", limits.LIMIT),
    (("plans",), {"offset": str(HUGE)}, None, "offset", limits.OFFSET),
    (("jobs", 1, "logs"), {"since": str(HUGE)}, None, "since", limits.SINCE),
    (("jobs", 1, "logs"), {"limit": "5001"}, None, "limit", limits.LOG_LIMIT),
    (("jobs", 1, "logs"), {"page": str(HUGE)}, None, "page", limits.LOG_PAGE),
    (("jobs", 1, "logs"), {"before": "0"}, None, "before", limits.BEFORE),
    (("jobs", 1, "logs"), {"step": "-1"}, None, "step", limits.STEP),
    (("search",), {"q": "plan", "k": str(HUGE)}, None, "k", limits.SEARCH_HITS),
    (
        ("jobs",),
        None,
        {"mode": "catch_up_recent", "parallel": HUGE},
        "parallel",
        limits.PARALLEL,
    ),
    (
        ("plans",),
        None,
        {"mode": "catch_up_recent", "lookback_days": HUGE},
        "lookback_days",
        limits.LOOKBACK_DAYS,
    ),
    (
        ("jobs",),
        None,
        {"mode": "catch_up_recent", "chunk_days": HUGE},
        "chunk_days",
        limits.CHUNK_DAYS,
    ),
    (
        ("jobs",),
        None,
        {"mode": "catch_up_recent", "chunk_days": 0},
        "chunk_days",
        limits.CHUNK_DAYS,
    ),
    (("jobs",), None, {"plan_id": HUGE}, "plan_id", limits.PLAN_ID),
    (
        ("plans",),
        None,
        {"mode": "repair", "reconciliation_id": HUGE},
        "reconciliation_id",
        limits.RECONCILIATION_ID,
    ),
]


async def test_numbers_out_of_range_are_400_naming_field_and_range(fetch: Any) -> None:
    for parts, query, body, field, bound in OUT_OF_RANGE:
        code, error = await fetch(*parts, params=query, body=body)
        assert code == 400, (parts, query, body, error)
        assert error["error"] == "OutOfRange" and error["details"]["field"] == field
        assert error["message"].startswith(f"{field}: ")
        assert f"allowed: {bound.minimum}..{bound.maximum}" in error["message"]


async def test_bad_path_ids_are_400_not_a_missing_route(fetch: Any) -> None:
    for parts in (("jobs", "abc"), ("plans", "1e3"), ("jobs", "٣"), ("jobs", "1x", "logs")):
        code, error = await fetch(*parts)
        assert code == 400 and "expected an integer" in error["message"], (parts, error)
    code, error = await fetch("jobs", "-1")
    assert code == 400 and error["message"].startswith("job_id: -1 is out of range")


async def test_deep_large_and_null_bodies_are_400(fetch: Any) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    code, error = await fetch("plans", body=deep)
    assert code == 400 and "nested more than" in error["message"]
    code, error = await fetch("plans", body={"mode": {"a": [[[[[[[["x"]]]]]]]]}})
    assert code == 400 and "nested more than" in error["message"]
    code, error = await fetch("plans", body={"mode": "x" * (limits.BODY_BYTES + 1)})
    assert code == 400 and f"at most {limits.BODY_BYTES}" in error["message"]
    code, error = await fetch("plans", body={"mode": "catch_up_recent", "sources": None})
    assert code == 400 and "'sources': null" in error["message"]
    for blank in ("\n", " ", "\r\n\t"):  # text, but not JSON: no body at all is {}
        code, error = await fetch("coverage", body=blank)
        assert code == 400 and "not JSON" in error["message"], (blank, error)
    assert (await fetch("jobs", 1, "verify", method="POST"))[0] == 404  # no body: {}


async def test_invalid_values_are_echoed_cut_short(fetch: Any) -> None:
    long = "x" * 500_000
    for parts, body, params in (
        (("plans",), {"mode": long}, None),
        (("plans",), {"mode": "catch_up_recent", "sources": [long]}, None),
        (("coverage",), None, {"source": long[:5000]}),
        (("jobs",), {"mode": "catch_up_recent", "executor": long}, None),
        (("plans",), {long[:1000]: 1}, None),
    ):
        code, error = await fetch(*parts, body=body, params=params)
        assert code == 400, error
        assert len(error["message"]) < 400, error["message"][:500]
        assert len(json.dumps(error)) < 1500


STRICT = [  # JSON bodies take JSON types: no "yes" for true, no "7" for 7
    {"mode": "backfill_range", **RANGE, "force": "yes"},
    {"mode": "backfill_range", **RANGE, "force": 1},
    {"mode": "catch_up_recent", "lookback_days": "7"},
    {"mode": "catch_up_recent", "lookback_days": True},
    {"mode": "catch_up_recent", "lookback_days": 7.5},
    {"mode": "catch_up_recent", "sources": "notes"},
    {"mode": "repair", "reconciliation_id": "1"},
    {"mode": ["catch_up_recent"]},
    {"mode": {"catch_up_recent": 1}},
]


async def test_bodies_take_strict_json_types_and_queries_decimal_text(fetch: Any) -> None:
    for body in STRICT:
        code, error = await fetch("plans", body=body)
        assert code == 400 and "expected" in error["message"], (body, error)
    assert (await fetch("jobs", 1, "cancel", body={"force": "true"}))[0] == 400
    assert (await fetch("plans", body={"mode": "catch_up_recent", "lookback_days": 7.0}))[0] == 201
    assert (await fetch("jobs", params={"limit": "7"}))[0] == 200  # a query is text
    for limit in ("+7", "7.0", "٣", "0x10", " 7", ""):
        code, error = await fetch("jobs", params={"limit": limit})
        assert code == 400, (limit, error)
    twice = api_params.Params.of_query({"offset": [b"1", b"2"]})
    with pytest.raises(UserError, match="given 2 times"):
        twice.integer("offset", limits.OFFSET)
    code, error = await fetch("coverage", params={"range_start_day": "20260301"})
    assert code == 400 and "YYYY-MM-DD" in error["message"]


async def test_messages_name_json_fields_not_cli_flags(fetch: Any, ctx: service.Context) -> None:
    code, error = await fetch("plans", body={"mode": "backfill_range"})
    assert code == 400 and error["details"]["fields"] == ["range_start_day", "range_end_day"]
    reversed_range = {"range_start_day": DAY2.isoformat(), "range_end_day": DAY1.isoformat()}
    code, error = await fetch("plans", body={"mode": "backfill_range", **reversed_range})
    assert code == 400 and "range_end_day" in error["message"]
    code, cover = await fetch("coverage", params=reversed_range)
    code, made = await fetch("plans", body={"mode": "backfill_range", **RANGE})
    assert code == 201
    (note,) = (ctx.settings.home / "sources" / "notes").rglob(f"{DAY1.isoformat()}*.md")
    note.write_text(note.read_text() + "\nA late addition.\n")  # the plan is stale now
    code, stale = await fetch("jobs", body={"plan_id": made["plan"]["id"]})
    assert code == 409 and stale["error"] == "StalePlan"
    assert '"replan": true' in stale["message"]
    for message in (error["message"], cover["message"], stale["message"]):
        assert "--" not in message, message


def test_every_operation_documents_its_errors_and_every_integer_its_range() -> None:
    doc = api_spec.openapi("http://x/api/ingestion")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"400", "403", "500"} <= set(op["responses"]), (path, method)
            for code, response in op["responses"].items():
                if code >= "400":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == api_spec.ERROR, (path, method, code)
            for parameter in op.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    assert {"minimum", "maximum"} <= set(parameter["schema"]), parameter
    for name in ("PlanRequest", "RunRequest"):
        for field, schema in doc["components"]["schemas"][name]["properties"].items():
            if schema.get("type") == "integer":
                assert {"minimum", "maximum"} <= set(schema), (name, field)


async def test_the_jobs_list_marks_an_unclaimed_queued_job(
    fetch: Any, ctx: service.Context
) -> None:
    """GET /jobs marks a queued job no worker claimed within the lease timeout as GET
    /jobs/{id} does (`unclaimed_seconds`), and the document describes every listed field."""
    from sqlalchemy import update

    from softcopy.db import session_scope
    from softcopy.ingestion.models import IngestionJob

    waiting = service.enqueue(ctx, options=BACKFILL).job  # detached; its worker never came
    assert waiting is not None and waiting.job.id is not None
    job_id = waiting.job.id
    code, listed = await fetch("jobs")
    assert code == 200 and listed["jobs"][0]["id"] == job_id
    assert listed["jobs"][0]["unclaimed_seconds"] is None  # within the lease: it waits

    gone = ctx.clock() - timedelta(seconds=ctx.settings.lease_timeout + 600)
    with session_scope(ctx.engine) as session:
        session.execute(
            update(IngestionJob).where(IngestionJob.id == job_id).values(queued_at=gone)  # type: ignore[arg-type]
        )
    code, listed = await fetch("jobs", params={"status": "queued"})
    assert code == 200
    (row,) = listed["jobs"]
    waited = ctx.settings.lease_timeout + 600  # the demo's clock runs on: a little more
    assert waited <= row["unclaimed_seconds"] < waited + 60
    code, view = await fetch("jobs", job_id)
    assert code == 200 and row["unclaimed_seconds"] <= view["unclaimed_seconds"] < waited + 60

    code, doc = await fetch("openapi.json")
    schemas = doc["components"]["schemas"]

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    item = resolved(resolved(schemas["Jobs"]["properties"]["jobs"])["items"])
    parts = [resolved(part) for part in item.get("allOf", [item])]
    described = {name for part in parts for name in part["properties"]}
    assert set(row) <= described, set(row) - described
