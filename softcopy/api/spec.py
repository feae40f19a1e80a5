"""The OpenAPI 3.1 document of `/api/ingestion/*`, served at `/api/ingestion/openapi.json`.

Response schemas are generated from the very types the handlers serialize (the tables and
the service's views), so they cannot drift from the code; a test checks that the paths and
methods here are exactly the routes `app.ROUTES` serves, and that each request body lists
the fields `softcopy.api.params` accepts. Number ranges come from `softcopy.limits`, the same ones
the handlers enforce; a property-based test (schemathesis) holds the live server to this
document: every status code it answers and every body it sends is described here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter

from softcopy import __version__, limits
from softcopy.ingestion import service
from softcopy.ingestion.coverage import Cell, FutureDays, RecordProblem
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.models import (
    CoverageSnapshot,
    IngestionJob,
    IngestionPlan,
    LogRecord,
    Verification,
)
from softcopy.memory.index import Hit

_DOC = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _array(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    shape: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        shape["required"] = list(required)
    return shape


PATH_IDS = {
    bound.field: bound
    for bound in (limits.PLAN_ID, limits.JOB_ID, limits.STEP_ID, limits.RECONCILIATION_ID)
}


def _id(name: str) -> dict[str, Any]:
    schema = PATH_IDS[name].schema()
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": 1}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


DAY = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
NAMES = _array({"type": "string", "minLength": 1})
PAGING = [
    _query("limit", limits.LIMIT.schema(default=20), "Rows."),
    _query("offset", limits.OFFSET.schema(default=0), "Rows to skip."),
]
RANGE = {
    "range_start_day": {**DAY, "description": "First day (default: open)."},
    "range_end_day": {**DAY, "description": "Last day (default: open)."},
}
PLAN_REQUEST = _object(
    {
        "mode": _ref("PlanMode"),
        "sources": {**NAMES, "description": "Only these sources (default: all)."},
        "stages": _array(_ref("Stage")),
        **RANGE,
        "lookback_days": limits.LOOKBACK_DAYS.schema(),
        "force": {"type": "boolean", "description": "backfill_range: redo current cells too."},
        "reconciliation_id": limits.RECONCILIATION_ID.schema(
            description="repair: which reconciliation."
        ),
        "allow_shrink": {
            "type": "boolean",
            "description": "Allow the plan to remove published items (empty a day that had "
            "items, or drop items of days outside the lookback window); refused with 409 "
            "otherwise.",
        },
        "skip_bad_records": {
            "type": "boolean",
            "description": "The job skips (and counts) unreadable source records instead of "
            "failing their day.",
        },
    },
    required=("mode",),
)
RUN_REQUEST = _object(
    {
        **PLAN_REQUEST["properties"],
        "plan_id": limits.PLAN_ID.schema(description="Run this saved plan (instead of mode)."),
        "executor": {
            "type": "string",
            "enum": executor_names(),
            "default": DEFAULT_EXECUTOR,
            "description": "Where each step runs.",
        },
        "engine": {
            "type": "string",
            "enum": executor_names(),
            "deprecated": True,
            "description": "The old name of executor, accepted for one release.",
        },
        "chunk_days": limits.CHUNK_DAYS.schema(description="Days with work per step."),
        "parallel": limits.PARALLEL.schema(
            description="Steps run at once (default: the home's `parallel` setting, else one"
            " per core)."
        ),
        "replan": {"type": "boolean", "description": "Re-plan a stale saved plan."},
    }
)
REQUESTS: dict[str, dict[str, Any]] = {
    "CoverageRequest": _object({"sources": NAMES, **RANGE}),
    "PlanRequest": PLAN_REQUEST,
    "RunRequest": RUN_REQUEST,
    "CancelRequest": _object({"force": {"type": "boolean", "description": "Stop the worker now."}}),
    "ResumeRequest": _object(
        {
            "allow_shrink": {
                "type": "boolean",
                "description": "Let the job's remaining cells remove published items (its "
                "source was cut or re-pointed since it was planned); refused with 409 "
                "otherwise.",
            },
            "skip_bad_records": {
                "type": "boolean",
                "description": "From now on the job skips (and counts) unreadable source "
                "records instead of failing their day (a job that failed on them goes on).",
            },
        }
    ),
    "ReconcileRequest": _object(
        {"sources": NAMES, **RANGE, "repair": {"type": "boolean"}},
    ),
}
for _shape in REQUESTS.values():
    _shape["additionalProperties"] = False

ERROR = _object(
    {
        "message": {"type": "string", "description": "One line; values in it are cut short."},
        "reason": {"type": ["string", "null"]},
        "error": {"type": "string", "description": "The error's class, e.g. StalePlan."},
        "details": {"type": "object", "description": "The error's facts (ids, changed cells)."},
    },
    required=("message",),
)
ERRORS = {
    code: {"description": description, "content": {"application/json": {"schema": ERROR}}}
    for code, description in {
        "400": "Bad input: a malformed or out-of-range value (the message names the field), "
        "an unknown field, a body over 1 MiB or nested too deeply.",
        "403": "No valid token.",
        "404": "Unknown id.",
        "409": "Contradicts persisted state: a stale plan, a cell held by another job, "
        "an illegal status transition, a destructive plan without allow_shrink.",
        "500": "The operation ran and failed.",
        "503": "The machine failed, not the request: a full or read-only disk, a database "
        "that cannot be reached or is locked; the same request can succeed once it is fixed.",
    }.items()
}


LAST_WEEK = {"mode": "catch_up_recent", "lookback_days": 7}
EXAMPLES: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "PlanRequest": {
        "catch_up": ("Catch up from each source's last current day.", LAST_WEEK),
        "backfill": (
            "Redo every cell of a range.",
            {
                "mode": "backfill_range",
                "range_start_day": "2026-03-01",
                "range_end_day": "2026-03-31",
                "force": True,
            },
        ),
    },
    "RunRequest": {
        "catch_up": (
            "Plan and run one source in one call, in a worker process.",
            {**LAST_WEEK, "sources": ["notes"], "executor": "inline"},
        ),
        "saved": ("Run a saved plan.", {"plan_id": 1}),
    },
    "CancelRequest": {"force": ("Stop the worker now.", {"force": True})},
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    errors: str = "",
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """An operation; every one can answer 400, 403, 500 and 503, `errors` adds the others."""
    codes = {"400", "403", "500", "503", *errors.split()}
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {**responses, **{code: ERRORS[code] for code in sorted(codes)}},
    }
    if params:
        operation["parameters"] = params
    if body:
        media: dict[str, Any] = {"schema": _ref(body)}
        if body in EXAMPLES:
            media["examples"] = {
                name: {"summary": summary, "value": value}
                for name, (summary, value) in EXAMPLES[body].items()
            }
        content = {"content": {"application/json": media}}
        operation["requestBody"] = {"required": body == "PlanRequest", **content}
    return operation


COVERAGE_PARAMS = [
    _query("source", NAMES, "Only this source (repeatable; default: all)."),
    *(_query(name, schema, schema["description"]) for name, schema in RANGE.items()),
]
PATHS: dict[str, dict[str, Any]] = {
    "/coverage": {
        "get": _op(
            "The newest coverage snapshot spanning these sources and days (nothing is scanned).",
            {"200": _json(_ref("Coverage"), "The snapshot, its cells cut to the request.")},
            errors="400 403 404",
            params=COVERAGE_PARAMS,
        ),
        "post": _op(
            "Scan the sources, compare with the ledger, persist a snapshot.",
            {"201": _json(_ref("Coverage"), "The new snapshot.")},
            errors="400 403",
            body="CoverageRequest",
        ),
    },
    "/plans": {
        "get": _op(
            "Saved plans, newest first.",
            {"200": _json(_ref("Plans"), "A page of plans.")},
            errors="400 403",
            params=[_query("status", _ref("PlanStatus"), "Only plans in this status."), *PAGING],
        ),
        "post": _op(
            "Make and save a plan.",
            {"201": _json(_ref("PlanView"), "The plan, its cells and the steps it would run.")},
            errors="404 409",
            body="PlanRequest",
        ),
    },
    "/plans/{plan_id}": {
        "get": _op(
            "A saved plan.",
            {"200": _json(_ref("PlanView"), "The plan.")},
            errors="403 404",
            params=[_id("plan_id")],
        )
    },
    "/jobs": {
        "get": _op(
            "Jobs, newest first.",
            {"200": _json(_ref("Jobs"), "A page of jobs.")},
            errors="400 403",
            params=[_query("status", _ref("JobStatus"), "Only jobs in this status."), *PAGING],
        ),
        "post": _op(
            "Run a saved plan (plan_id) or plan and run (mode), in a detached worker.",
            {
                "202": _json(_ref("RunOutcome"), "The job is queued; a worker runs it."),
                "200": _json(_ref("RunOutcome"), "Nothing to do: every cell is current."),
            },
            errors="400 403 404 409",
            body="RunRequest",
        ),
    },
    "/jobs/{job_id}": {
        "get": _op(
            "A job with its steps, progress and latest verification.",
            {"200": _json(_ref("JobView"), "The job.")},
            errors="403 404",
            params=[_id("job_id")],
        )
    },
    "/jobs/{job_id}/resume": {
        "post": _op(
            "Continue a failed, cancelled or interrupted job from its checkpoints (detached).",
            {"202": _json(_ref("JobView"), "The job, queued again; a worker runs it.")},
            errors="400 403 404 409",
            params=[_id("job_id")],
            body="ResumeRequest",
        )
    },
    "/jobs/{job_id}/cancel": {
        "post": _op(
            "Ask a job to stop at its next day boundary (now, with force).",
            {"200": _json(_ref("JobView"), "The job.")},
            errors="400 403 404 409",
            params=[_id("job_id")],
            body="CancelRequest",
        )
    },
    "/jobs/{job_id}/verify": {
        "post": _op(
            "Prove every cell the job completed; the result is persisted.",
            {"201": _json(_ref("Verification"), "The verification (ok may be false).")},
            errors="403 404 409",
            params=[_id("job_id")],
        )
    },
    "/jobs/{job_id}/logs": {
        "get": _op(
            "A job's log rows after the id `since`, oldest first; or, given `page` or "
            "`before`, a page of the newest rows (oldest first within it) with `total` and "
            "`older` counts. Both filtered by level, step, source and day.",
            {"200": _json(_ref("Logs"), "Rows, and the `since` to poll with next.")},
            errors="400 403 404",
            params=[
                _id("job_id"),
                _query("since", limits.SINCE.schema(default=0), "Rows after this id."),
                _query("page", limits.LOG_PAGE.schema(), "The newest rows' page (1: newest)."),
                _query("before", limits.BEFORE.schema(), "Newest rows before this id."),
                _query("level", _ref("LogLevel"), "At least this level."),
                _query("step", limits.STEP.schema(), "Only this step (its number in the job)."),
                _query("source", {"type": "string", "minLength": 1}, "Only this source."),
                _query("day", DAY, "Only this day."),
                _query("limit", limits.LOG_LIMIT.schema(default=500), "Rows."),
            ],
        )
    },
    "/jobs/{job_id}/steps/{step_id}/notebook": {
        "get": _op(
            "The executed notebook a notebook executor kept for the step (`format=html`: "
            "rendered as a page).",
            {
                "200": {
                    "description": "The notebook (nbformat 4), or its HTML page.",
                    "content": {
                        "application/x-ipynb+json": {"schema": {"type": "object"}},
                        "text/html": {"schema": {"type": "string"}},
                    },
                }
            },
            errors="400 403 404",
            params=[
                _id("job_id"),
                _id("step_id"),
                _query("format", {"type": "string", "enum": ["ipynb", "html"]}, "The shape."),
            ],
        )
    },
    "/reconcile": {
        "post": _op(
            "Compare persisted state with sources, artifacts, the index and live jobs.",
            {"201": _json(_ref("ReconcileReport"), "Findings, and the repair plan if asked.")},
            errors="409",
            body="ReconcileRequest",
        )
    },
    "/reconciliations/{reconciliation_id}": {
        "get": _op(
            "A persisted reconciliation.",
            {"200": _json(_ref("ReconcileReport"), "The reconciliation.")},
            errors="403 404",
            params=[_id("reconciliation_id")],
        )
    },
    "/search": {
        "get": _op(
            "Search the published memory: full-text rank fused with vector similarity. "
            "A query that matches nothing, by words or meaning, gives no hits.",
            {"200": _json(_ref("SearchResult"), "The hits, best first (none: an empty list).")},
            errors="400 403",
            params=[
                {
                    **_query(
                        "q",
                        {"type": "string", "minLength": 1},
                        'What to look for: words, "a phrase", prefix*, -excluded, '
                        "source:NAME, since:YYYY-MM-DD, until:YYYY-MM-DD.",
                    ),
                    "required": True,
                    "example": "release plan",
                },
                _query("k", limits.SEARCH_HITS.schema(default=10), "Hits at most."),
                _query("source", NAMES, "Only this source (repeatable; default: all)."),
                _query("since", DAY, "First day (default: open)."),
                _query("until", DAY, "Last day (default: open)."),
            ],
        )
    },
    "/openapi.json": {
        "get": _op("This document.", {"200": _json({"type": "object"}, "OpenAPI 3.1.")})
    },
}


@cache
def _model_schemas() -> dict[str, Any]:
    """JSON schemas of everything the handlers serialize, from the types themselves."""
    types: dict[str, Any] = {
        "Cell": Cell,
        "FutureDays": FutureDays,
        "RecordProblem": RecordProblem,
        "CoverageSnapshot": CoverageSnapshot,
        "PlanView": service.PlanView,
        "JobView": service.JobView,
        "RunOutcome": service.RunOutcome,
        "ReconcileReport": service.ReconcileReport,
        "IngestionJob": IngestionJob,
        "IngestionPlan": IngestionPlan,
        "LogRecord": LogRecord,
        "Verification": Verification,
        "Hit": Hit,
    }
    _, schemas = TypeAdapter.json_schemas(
        [(name, "serialization", TypeAdapter(kind)) for name, kind in types.items()],
        ref_template=_DOC,
    )
    return schemas["$defs"]


def _schemas() -> dict[str, Any]:
    paged = {"limit": {"type": "integer"}, "offset": {"type": "integer"}}
    return {
        **_model_schemas(),
        "Coverage": _object(
            {
                "snapshot": _ref("CoverageSnapshot"),
                "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
                "cells": _array(_ref("Cell")),
                "future_days": _array(_ref("FutureDays")),
                "problems": _array(_ref("RecordProblem")),
                "problems_total": {"type": "integer"},
            },
            required=(
                "snapshot",
                "totals",
                "cells",
                "future_days",
                "problems",
                "problems_total",
            ),
        ),
        "Plans": _object({"plans": _array(_ref("IngestionPlan")), **paged}),
        "Jobs": _object({"jobs": _array(_ref("ListedJob")), **paged}),
        "ListedJob": {
            "allOf": [
                _ref("IngestionJob"),
                _object(
                    {
                        "unclaimed_seconds": {
                            "anyOf": [{"type": "number"}, {"type": "null"}],
                            "description": "Queued, and no worker claimed it within the lease "
                            "timeout: for this many seconds (as in GET /jobs/{job_id}); null "
                            "otherwise.",
                        }
                    },
                    required=("unclaimed_seconds",),
                ),
            ]
        },
        "SearchResult": _object(
            {"query": {"type": "string"}, "hits": _array(_ref("Hit"))}, required=("query", "hits")
        ),
        "Logs": _object(
            {
                "records": _array(_ref("LogRecord")),
                "next_since": {"type": "integer"},
                "total": {"type": "integer", "description": "Matching rows (page/before)."},
                "older": {"type": "integer", "description": "Of them older than the page."},
            }
        ),
        **REQUESTS,
    }


def openapi(server_url: str) -> dict[str, Any]:
    """The document, with `server_url` (the server's base URL + /api/ingestion)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "softcopy ingestion API",
            "version": __version__,
            "description": "The ingestion control plane: coverage, plans, jobs, verify, "
            "reconcile. Authenticate with the Jupyter server's token: "
            "`Authorization: token <token>` or `?token=<token>`.",
        },
        "servers": [{"url": server_url}],
        "security": [{"token": []}, {"tokenQuery": []}],
        "paths": PATHS,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }
