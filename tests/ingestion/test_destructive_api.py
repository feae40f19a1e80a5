"""`allow_shrink` over HTTP: a destructive plan is a 409 naming the source, days and
counts in API words (no CLI flag), and goes through with the field set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from softcopy.ingestion import service
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY
from tests.ingestion.test_api import fetch, jp_server_config, wait_for_job  # noqa: F401

START = DEMO_TODAY - timedelta(days=6)  # a week: the chat has weekday messages
WEEK = service.PlanOptions(
    PlanMode.backfill_range, sources=["chat"], range_start_day=START, range_end_day=DEMO_TODAY
)


async def test_destructive_plan_is_409_unless_allow_shrink(
    fetch: Any,  # noqa: F811
    ctx: service.Context,
) -> None:
    service.run(ctx, options=WEEK)
    published = service.coverage(ctx, sources=["chat"]).cells
    assert any(c.items for c in published)
    ctx.settings.source("chat").path.write_text("")
    days = {"range_start_day": str(START), "range_end_day": str(DEMO_TODAY)}
    body = {"mode": "backfill_range", "sources": ["chat"], **days}
    code, error = await fetch("plans", body=body)
    assert code == 409 and error["error"] == "DestructivePlan", error
    assert "source 'chat'" in error["message"] and "--" not in error["message"]
    assert error["details"]["source"] == "chat" and error["details"]["remaining"] == 0
    assert error["details"]["days"] and error["details"]["published"] > 0
    code, error = await fetch("jobs", body=body)
    assert code == 409 and error["error"] == "DestructivePlan"
    code, made = await fetch("plans", body={**body, "allow_shrink": True})
    assert code == 201 and made["plan"]["params"]["allow_shrink"] is True
    code, error = await fetch("plans", body={**body, "allow_shrink": "yes please"})
    assert code == 400 and "allow_shrink" in error["message"]


async def test_resume_that_would_shrink_is_409_unless_allow_shrink(
    fetch: Any,  # noqa: F811
    ctx: service.Context,
) -> None:
    service.run(ctx, options=WEEK)
    waiting = service.enqueue(ctx, options=service.PlanOptions(**{**WEEK.__dict__, "force": True}))
    assert waiting.job is not None and waiting.job.job.id is not None
    job_id = waiting.job.job.id
    service.cancel(ctx, job_id=job_id)  # a queued job is cancelled at once
    ctx.settings.source("chat").path.write_text("")  # cut before it is resumed
    code, error = await fetch("jobs", job_id, "resume", method="POST")
    assert code == 409 and error["error"] == "DestructivePlan", error
    assert "source 'chat'" in error["message"] and '"allow_shrink": true' in error["message"]
    code, error = await fetch("jobs", job_id, "resume", body={"allow_shrink": "yes"})
    assert code == 400 and "allow_shrink" in error["message"]
    code, view = await fetch("jobs", job_id, "resume", body={"allow_shrink": True})
    assert code == 202, view
    assert service.get_plan(ctx, plan_id=view["job"]["plan_id"]).plan.params["allow_shrink"]
    ended = await wait_for_job(fetch, job_id)
    assert ended["job"]["status"] == "succeeded", ended["job"]


async def test_openapi_documents_allow_shrink(fetch: Any) -> None:  # noqa: F811
    code, doc = await fetch("openapi.json")
    assert code == 200
    schemas = doc["components"]["schemas"]
    for request in ("PlanRequest", "RunRequest", "ResumeRequest"):
        field = schemas[request]["properties"]["allow_shrink"]
        assert field["type"] == "boolean" and "published items" in field["description"]
    resume = doc["paths"]["/jobs/{job_id}/resume"]["post"]
    assert resume["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResumeRequest"
    }
    assert "409" in resume["responses"]
    assert "destructive plan" in doc["paths"]["/plans"]["post"]["responses"]["409"]["description"]


async def test_future_dated_items_are_a_coverage_warning_and_a_finding(
    fetch: Any,  # noqa: F811
    ctx: service.Context,
) -> None:
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write('{"id": "z", "ts": "9999-12-31T12:00:00Z", "text": "from the future"}\n')
    code, report = await fetch("coverage", body={"sources": ["chat"]})
    assert code == 201, report
    assert report["future_days"] == [
        {"source": "chat", "days": ["9999-12-31"], "items": 1, "today": str(DEMO_TODAY)}
    ]
    code, latest = await fetch("coverage", params={"source": "chat"})
    assert code == 200 and latest["future_days"] == report["future_days"]
    code, reconciled = await fetch("reconcile", body={"sources": ["chat"]})
    assert code == 201, reconciled
    future = [f for f in reconciled["findings"] if f["kind"] == "future_dated"]
    assert [(f["source"], f["day"]) for f in future] == [("chat", "9999-12-31")]
