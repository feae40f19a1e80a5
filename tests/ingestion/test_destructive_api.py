"""`allow_shrink` over HTTP: a destructive plan is a 409 naming the source, days and
counts in API words (no CLI flag), and goes through with the field set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from softcopy.ingestion import service
from softcopy.ingestion.states import PlanMode
from tests.conftest import DEMO_TODAY
from tests.ingestion.test_api import fetch, jp_server_config  # noqa: F401

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
