"""The HTTP face of the control plane: a jupyter_server extension serving `/api/ingestion/*`.

Each handler authenticates (the server's token; `allow_unauthenticated_access` stays off),
reads its input, makes one service call off the event loop (service calls block on the
database and the files), and serializes the result. Errors map to HTTP status codes in one
place, `status_of`: bad input 400, unknown id 404, conflict with persisted state 409.

Enabled on install by `etc/jupyter/jupyter_server_config.d/softcopy.json`; the home is
`c.SoftcopyAPI.home`, else SOFTCOPY_HOME, else the user data dir.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.httputil import responses
from traitlets import Unicode

from softcopy import limits
from softcopy.api import spec as api_spec
from softcopy.api.params import PLAN_FIELDS, RUN_FIELDS, Params, plan_options
from softcopy.errors import (
    ECHO_CHARS,
    Conflict,
    DestructivePlan,
    EnvironmentFault,
    NotFound,
    OperationFailed,
    SoftcopyError,
    UserError,
    echo,
)
from softcopy.faults import environment_fault
from softcopy.ingestion import service
from softcopy.ingestion.coverage import totals
from softcopy.ingestion.executors import DEFAULT_EXECUTOR, executor_names
from softcopy.ingestion.jobs import DEFAULT_CHUNK_DAYS
from softcopy.ingestion.planner import StalePlan
from softcopy.ingestion.states import JobStatus, LogLevel, PlanStatus
from softcopy.memory.search import search as search_memory
from softcopy.serialize import jsonable

PREFIX = "/api/ingestion"
CONTEXT_SETTING = "softcopy_context"  # tornado setting: a () -> service.Context factory
AUTH_RESOURCE = "ingestion"
NOTEBOOK_TYPE = "application/x-ipynb+json"
NOTEBOOK_FORMATS = {"ipynb": NOTEBOOK_TYPE, "html": "text/html; charset=UTF-8"}
PAGE = 20  # plans or jobs per page unless `limit` says otherwise
LOG_PAGE = 500  # log rows per page unless `limit` says otherwise
SEARCH_HITS = 10  # search hits unless `k` says otherwise
_STATUS: tuple[tuple[type[SoftcopyError], int], ...] = (
    (UserError, 400),
    (NotFound, 404),
    (Conflict, 409),
    (OperationFailed, 500),
    (EnvironmentFault, 503),  # a full disk, a read-only home, a database that went away
)
MESSAGE_CHARS = 500  # an error message longer than this is cut (values in it already are)
DETAIL_ITEMS = 20  # a list among an error's facts shows at most this many entries
PATH_IDS = {  # every {name} in a route template, and its range
    "plan_id": limits.PLAN_ID,
    "job_id": limits.JOB_ID,
    "step_id": limits.STEP_ID,
    "reconciliation_id": limits.RECONCILIATION_ID,
}


def status_of(error: SoftcopyError) -> int:
    """The one place a SoftcopyError becomes an HTTP status code."""
    return next((code for kind, code in _STATUS if isinstance(error, kind)), 500)


# What to send to do it anyway: the core's messages name no field to set, the API adds it.
HINTS: dict[type[SoftcopyError], str] = {
    DestructivePlan: 'send "allow_shrink": true to do it anyway',
    StalePlan: 'or send "replan": true to plan again and run',
}


def api_message(error: SoftcopyError) -> str:
    """The error worded for API users: fields by their JSON keys, never CLI flags; short."""
    message = str(error)
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    hint = next((h for kind, h in HINTS.items() if isinstance(error, kind)), None)
    return f"{message}; {hint}" if hint else message


def error_body(error: SoftcopyError) -> dict[str, Any]:
    """What a client gets: the one-line message, the error's name and its facts, all short."""
    code = status_of(error)
    facts = {k: _short(jsonable(v)) for k, v in vars(error).items() if not k.startswith("_")}
    return {
        "message": api_message(error),
        "reason": responses.get(code, "Error"),
        "error": type(error).__name__,
        "details": facts,
    }


def _short(fact: Any) -> Any:
    """A fact cut to a size worth sending back: long text and long lists are cut."""
    if isinstance(fact, str):
        return fact if len(fact) <= ECHO_CHARS else echo(fact)
    if isinstance(fact, list):
        return [_short(f) for f in fact[:DETAIL_ITEMS]]
    if isinstance(fact, dict):
        return {k: _short(v) for k, v in list(fact.items())[:DETAIL_ITEMS]}
    if isinstance(fact, int) and not isinstance(fact, bool) and len(str(fact)) > ECHO_CHARS:
        return echo(fact)
    return fact


class IngestionHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every route: one service call in a thread, JSON out, errors mapped."""

    auth_resource = AUTH_RESOURCE

    async def call(self, use_case: Callable[[service.Context], Any]) -> Any:
        factory: Callable[[], service.Context] = self.settings[CONTEXT_SETTING]
        return await asyncio.to_thread(lambda: use_case(factory()))

    def send(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(jsonable(value)))  # ASCII: even a lone surrogate is sent

    def query(self) -> Params:
        return Params.of_query(self.request.query_arguments)

    def ids(self, **path: str) -> list[int]:
        """The route's path ids, each checked against its range, in the order given."""
        params = Params.of_path(path)
        return [params.id(name, PATH_IDS[name]) for name in path]

    def body(self, allowed: set[str] | frozenset[str]) -> Params:
        return Params.of_json(self.request.body, allowed)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if error is not None and not isinstance(error, SoftcopyError):
            error = environment_fault(error) or error  # a driver or OS error not yet translated
        if not isinstance(error, SoftcopyError):
            super().write_error(status_code, **kwargs)
            return
        self.set_status(status_of(error))
        self.finish(json.dumps(error_body(error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, SoftcopyError) and status_of(value) < 500:
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class CoverageHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The newest snapshot spanning the request, without scanning."""
        q = self.query()
        report = await self.call(
            lambda ctx: service.latest_coverage(
                ctx,
                sources=q.strings("source"),
                range_start_day=q.day("range_start_day"),
                range_end_day=q.day("range_end_day"),
            )
        )
        if report is None:
            raise NotFound("coverage snapshot", "for these sources and days")
        self.send(_coverage(report))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        b = self.body({"sources", "range_start_day", "range_end_day"})
        report = await self.call(
            lambda ctx: service.coverage(
                ctx,
                sources=b.strings("sources"),
                range_start_day=b.day("range_start_day"),
                range_end_day=b.day("range_end_day"),
            )
        )
        self.send(_coverage(report), 201)


class PlansHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        q = self.query()
        status, limit, offset = q.enum("status", PlanStatus), _limit(q), _offset(q)
        rows = await self.call(
            lambda ctx: service.list_plans(ctx, status=status, limit=limit, offset=offset)
        )
        self.send({"plans": rows, "limit": limit, "offset": offset})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        options = plan_options(self.body(PLAN_FIELDS), required=True)
        assert options is not None
        self.send(await self.call(lambda ctx: service.plan(ctx, options=options)), 201)


class PlanHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self, plan_id: str) -> None:
        (pid,) = self.ids(plan_id=plan_id)
        self.send(await self.call(lambda ctx: service.get_plan(ctx, plan_id=pid)))


class JobsHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        q = self.query()
        status, limit, offset = q.enum("status", JobStatus), _limit(q), _offset(q)
        rows = await self.call(
            lambda ctx: service.listed_jobs(ctx, status=status, limit=limit, offset=offset)
        )
        self.send({"jobs": rows, "limit": limit, "offset": offset})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Run a saved plan (`plan_id`) or plan and run (`mode`), always in a detached worker."""
        b = self.body(RUN_FIELDS)
        plan_id, options = b.integer("plan_id", limits.PLAN_ID), plan_options(b, required=False)
        if (plan_id is None) == (options is None):
            raise UserError("give either plan_id or mode")
        executor = b.choice("executor", executor_names())
        engine = b.choice("engine", executor_names())  # the old name of "executor"
        if executor is not None and engine is not None and executor != engine:
            raise UserError('give "executor" or "engine" (its old name), not both')
        executor = executor or engine  # else the home's `executor` setting, else the default
        replan = b.flag("replan")
        chunk_days = b.integer("chunk_days", limits.CHUNK_DAYS) or DEFAULT_CHUNK_DAYS
        parallel = b.integer("parallel", limits.PARALLEL)  # else the home's setting
        outcome = await self.call(
            lambda ctx: service.run(
                ctx,
                plan_id=plan_id,
                options=options,
                executor=executor or ctx.settings.executor or DEFAULT_EXECUTOR,
                chunk_days=chunk_days,
                replan=replan,
                detach=True,
                parallel=parallel,
            )
        )
        self.send(outcome, 200 if outcome.job is None else 202)


class JobHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        (jid,) = self.ids(job_id=job_id)
        self.send(await self.call(lambda ctx: service.show_job(ctx, job_id=jid)))


class ResumeHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        (jid,) = self.ids(job_id=job_id)
        body = self.body({"allow_shrink", "skip_bad_records"})
        allow_shrink, skip_bad = body.flag("allow_shrink"), body.flag("skip_bad_records")
        view = await self.call(
            lambda ctx: service.resume(
                ctx, job_id=jid, detach=True, allow_shrink=allow_shrink, skip_bad_records=skip_bad
            )
        )
        self.send(view, 202)


class CancelHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        (jid,) = self.ids(job_id=job_id)
        force = self.body({"force"}).flag("force")
        self.send(await self.call(lambda ctx: service.cancel(ctx, job_id=jid, force=force)))


class VerifyHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        (jid,) = self.ids(job_id=job_id)
        self.body(set())
        self.send(await self.call(lambda ctx: service.verify(ctx, job_id=jid)), 201)


class LogsHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Rows after the id `since`, oldest first (poll again with `next_since`); or, given
        `page` or `before`, a page of the newest rows with how many match in all (`total`)
        and are older than the page (`older`). Both filtered by level, step, source, day."""
        (jid,) = self.ids(job_id=job_id)
        q = self.query()
        since = q.integer("since", limits.SINCE)
        page = q.integer("page", limits.LOG_PAGE)
        before = q.integer("before", limits.BEFORE)
        if since is not None and (page is not None or before is not None):
            raise UserError("query: give since (rows after it) or page/before (the newest rows)")
        filters: dict[str, Any] = {
            "level": q.enum("level", LogLevel),
            "step": q.integer("step", limits.STEP),
            "source": q.text("source"),
            "day": q.day("day"),
        }
        limit = q.integer("limit", limits.LOG_LIMIT) or LOG_PAGE
        if page is None and before is None:
            after = since or 0
            rows = await self.call(
                lambda ctx: service.job_logs(
                    ctx, job_id=jid, after_id=after, limit=limit, **filters
                )
            )
            self.send({"records": rows, "next_since": rows[-1].id if rows else after})
            return
        tail = await self.call(
            lambda ctx: service.log_tail(
                ctx, job_id=jid, before_id=before, page=page or 1, limit=limit, **filters
            )
        )
        last = tail.records[-1].id if tail.records else 0
        self.send(
            {
                "records": tail.records,
                "next_since": last,
                "total": tail.total,
                "older": tail.older,
            }
        )


class StepNotebookHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str, step_id: str) -> None:
        """The executed notebook a notebook executor kept for the step; `format=html`: the
        notebook rendered as a page (what the dashboard shows in place)."""
        jid, sid = self.ids(job_id=job_id, step_id=step_id)
        shape = self.query().choice("format", list(NOTEBOOK_FORMATS)) or "ipynb"
        if shape == "html":
            page = await self.call(
                lambda ctx: service.step_notebook_html(ctx, job_id=jid, step_id=sid)
            )
            self.finish(page, set_content_type=NOTEBOOK_FORMATS["html"])
            return
        content = await self.call(lambda ctx: service.step_notebook(ctx, job_id=jid, step_id=sid))
        self.finish(content, set_content_type=NOTEBOOK_TYPE)


class ReconcileHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        b = self.body({"sources", "range_start_day", "range_end_day", "repair"})
        report = await self.call(
            lambda ctx: service.reconcile(
                ctx,
                sources=b.strings("sources"),
                range_start_day=b.day("range_start_day"),
                range_end_day=b.day("range_end_day"),
                repair=b.flag("repair"),
            )
        )
        self.send(report, 201)


class ReconciliationHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self, reconciliation_id: str) -> None:
        (rid,) = self.ids(reconciliation_id=reconciliation_id)
        self.send(
            await self.call(lambda ctx: service.get_reconciliation(ctx, reconciliation_id=rid))
        )


class SearchHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The published memory, as `softcopy memory search` answers (no hits: an empty list)."""
        q = self.query()
        text = q.text("q")
        if text is None or not text.strip():
            raise UserError("query field 'q': give what to look for")
        k = q.integer("k", limits.SEARCH_HITS) or SEARCH_HITS
        sources, since, until = q.strings("source") or [], q.day("since"), q.day("until")
        hits = await self.call(
            lambda ctx: search_memory(
                ctx.settings, query=text, k=k, sources=sources, since=since, until=until
            )
        )
        self.send({"query": text, "hits": hits})


class OpenAPIHandler(IngestionHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(api_spec.openapi(self.base_url.rstrip("/") + PREFIX))


# The route table: OpenAPI path templates, each {name} an integer id.
ROUTES: list[tuple[str, type[IngestionHandler]]] = [
    ("/coverage", CoverageHandler),
    ("/plans", PlansHandler),
    ("/plans/{plan_id}", PlanHandler),
    ("/jobs", JobsHandler),
    ("/jobs/{job_id}", JobHandler),
    ("/jobs/{job_id}/resume", ResumeHandler),
    ("/jobs/{job_id}/cancel", CancelHandler),
    ("/jobs/{job_id}/verify", VerifyHandler),
    ("/jobs/{job_id}/logs", LogsHandler),
    ("/jobs/{job_id}/steps/{step_id}/notebook", StepNotebookHandler),
    ("/reconcile", ReconcileHandler),
    ("/reconciliations/{reconciliation_id}", ReconciliationHandler),
    ("/search", SearchHandler),
    ("/openapi.json", OpenAPIHandler),
]
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def route_methods() -> dict[str, set[str]]:
    """Which methods each route serves: what the OpenAPI document must describe."""
    return {
        template: {m for m in HTTP_METHODS if m in vars(handler)} for template, handler in ROUTES
    }


def _pattern(template: str) -> str:
    """Ids match any segment, so a bad one is a 400 naming it rather than no route."""
    return PREFIX + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?"


def _limit(q: Params) -> int:
    return q.integer("limit", limits.LIMIT) or PAGE


def _offset(q: Params) -> int:
    return q.integer("offset", limits.OFFSET) or 0


def _coverage(report: service.CoverageReport) -> dict[str, Any]:
    return {
        "snapshot": report.snapshot,
        "totals": totals(report.cells),
        "cells": report.cells,
        "future_days": report.future_days,
        "problems": report.problems,
        "problems_total": report.problems_total,
    }


class SoftcopyAPI(ExtensionApp):
    """The extension: registers the routes and says which home they serve."""

    name = "softcopy"
    description = "softcopy's ingestion control plane over HTTP"
    home = Unicode("", help="The softcopy home; empty: SOFTCOPY_HOME, else the user data dir.").tag(
        config=True
    )

    def initialize_settings(self) -> None:
        # Handlers get their Context from this factory; tests swap in their own (a fixed clock).
        self.settings[CONTEXT_SETTING] = self.open_context

    def initialize_handlers(self) -> None:
        self.handlers.extend((_pattern(template), handler) for template, handler in ROUTES)

    def open_context(self) -> service.Context:
        return service.open_context(Path(self.home) if self.home else None)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "softcopy.api", "app": SoftcopyAPI}]
