"""The dashboard shows future-dated items (issue 8): coverage warns of them, on Show and
from the newest snapshot alike, and the reconcile tab lists the future_dated finding."""

from __future__ import annotations

import json

from softcopy.dashboard import Dashboard
from softcopy.ingestion import service
from tests.conftest import DEMO_TODAY


def test_coverage_warns_of_items_dated_after_today_and_reconcile_lists_them(
    ctx: service.Context,
) -> None:
    record = {"id": "z", "ts": "9999-12-31T12:00:00Z", "text": "from a clock gone wrong"}
    with ctx.settings.source("chat").path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    board = Dashboard(ctx, poll_interval=0)
    try:
        board.coverage.refresh()  # Show: a new snapshot
        shown = board.coverage.problems.value
        assert "warning: items dated after today" in shown
        assert f"source &#x27;chat&#x27; has 1 items dated after today ({DEMO_TODAY})" in shown
        assert "9999-12-31" in shown and "notes" not in shown
        assert board.coverage.shown_end == DEMO_TODAY  # the map stops at today
        board.coverage.problems.value = ""
        board.coverage.load()  # the page's first paint: the newest snapshot, no scan
        assert board.coverage.problems.value == shown
        board.reconcile.reconcile()
        findings = board.reconcile.findings.value
        assert "1 future dated" in findings and "9999-12-31" in findings
    finally:
        board.close()


def test_no_warning_without_future_dated_items(ctx: service.Context) -> None:
    board = Dashboard(ctx, poll_interval=0)
    try:
        board.coverage.refresh()
        assert "after today" not in board.coverage.problems.value
    finally:
        board.close()
