"""The dashboard in a real browser: Debian's Chromium (headless, never downloaded) driven by
Playwright against `softcopy serve` on a demo home. Preview and run a backfill and watch it
reach done; close the tab while a second job runs, reopen the dashboard, find the job still
running and cancel it; verify the first; edit a note and see its cells turn stale.
Screenshots go to the test's tmp folder (and to docs/dashboard.png with
SOFTCOPY_UPDATE_SCREENSHOT=1).

Skipped with a message when /usr/bin/chromium or the playwright package is missing
(`make test` installs Chromium when it can; `.ci/run` always has it)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e import browser as web

if (reason := web.missing()) is not None:
    pytest.skip(reason, allow_module_level=True)

from playwright import sync_api

from softcopy.demo import build_demo

REPO = web.REPO
DEMO_DAYS = 730  # long enough that the second job is still running after a reopen
WAIT_MS = web.WAIT_MS
tab = web.tab


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dashboard") / "home"
    build_demo(home, days=DEMO_DAYS)  # today: the server's kernel runs on the real clock
    return home


@pytest.fixture(scope="module")
def dashboard_url(demo: Path) -> Iterator[str]:
    """Its own server: this test starts from a home with no snapshot and runs its jobs."""
    with web.served(demo) as url:
        yield url
    web.cancel_live_jobs(demo)


def open_dashboard(browser, url: str):  # type: ignore[no-untyped-def]
    return web.open_page(browser, url)


def set_day(page, css: str, day: object) -> None:  # type: ignore[no-untyped-def]
    page.locator(f"{css} input").fill(str(day))
    page.locator(f"{css} input").dispatch_event("change")


def test_backfill_watch_reopen_cancel_verify(
    demo: Path, dashboard_url: str, browser, tmp_path: Path
) -> None:
    expect = sync_api.expect
    expect.set_options(timeout=WAIT_MS)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    today = datetime.now(UTC).date()
    began = time.monotonic()

    page = open_dashboard(browser, dashboard_url)
    # Rendering takes no snapshot: coverage shows once asked for.
    expect(page.locator(".sc-coverage")).to_contain_text("Show takes one")
    page.locator(".sc-btn-show").click()
    expect(page.locator(".sc-coverage")).to_contain_text("missing")
    square = page.locator('.sc-hm-cell:not([data-stage]):not([data-code=" "])').first
    first_day = square.get_attribute("data-first")
    square.hover()  # a square's tooltip: its source, days and counts by state
    expect(page.locator(".sc-hm-tip")).to_contain_text("missing")
    set_day(page, ".sc-coverage-day", first_day)  # a day in detail: its cells and digests
    expect(page.locator(".sc-day-details")).to_contain_text("expected")
    page.screenshot(path=shots / "01-coverage.png", full_page=True)

    # A backfill of the last 30 days: preview, then run; watch its progress reach done.
    tab(page, "Plan")
    set_day(page, ".sc-plan-range-start", today - timedelta(days=29))
    set_day(page, ".sc-plan-range-end", today)
    page.locator(".sc-btn-preview").click()
    expect(page.locator(".sc-plan-preview")).to_contain_text("cells")
    expect(page.locator(".sc-plan-preview")).to_contain_text("steps")
    page.screenshot(path=shots / "02-preview.png", full_page=True)
    page.locator(".sc-btn-run").click()
    header = page.locator(".sc-job-header")
    expect(header).to_contain_text("Job 1")
    expect(header).to_contain_text("succeeded")
    progress = page.locator(".sc-progress-label")
    expect(progress).to_have_text(re.compile(r"^(\d+)/\1 cells \(100%\)"))
    page.screenshot(path=shots / "03-job-done.png", full_page=True)

    # A second, long backfill; close the tab while it runs: the job goes on.
    tab(page, "Plan")
    set_day(page, ".sc-plan-range-start", today - timedelta(days=DEMO_DAYS))
    set_day(page, ".sc-plan-range-end", today)
    page.locator(".sc-btn-run").click()
    expect(header).to_contain_text("Job 2")
    page.context.close()

    page = open_dashboard(browser, dashboard_url)
    tab(page, "Jobs")
    header = page.locator(".sc-job-header")
    expect(header).to_contain_text("Job 2")  # the reopened dashboard follows the live job
    expect(header).to_contain_text("running")
    page.locator(".sc-btn-cancel").click()
    page.locator(".sc-btn-cancel-the-job").click()  # a large job: Cancel asks first
    expect(page.locator(".sc-job > .sc-message")).to_contain_text("cancel requested")
    expect(header).to_contain_text("cancelled")
    page.screenshot(path=shots / "04-cancelled.png", full_page=True)

    # Verify the first job; the result shows in place.
    page.locator(".sc-job-row-1 button").click()
    expect(header).to_contain_text("Job 1")
    page.locator(".sc-btn-verify").click()
    expect(page.locator(".sc-verification")).to_contain_text("cells checked")
    page.screenshot(path=shots / "05-verified.png", full_page=True)

    # A late edit to a note the first job published: coverage calls its cells stale.
    note = max((demo / "sources" / "notes" / "Daily").rglob("*.md"))
    assert note.stem >= str(today - timedelta(days=29))
    note.write_text(note.read_text() + "\nA late addition.\n")
    tab(page, "Coverage")
    page.locator(".sc-btn-show").click()
    expect(page.locator(".sc-legend")).to_contain_text(re.compile(r"stale [1-9]"))
    page.locator(".sc-dashboard").screenshot(path=shots / "06-dashboard.png")
    if os.environ.get("SOFTCOPY_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shots / "06-dashboard.png", REPO / "docs" / "dashboard.png")
    print(f"screenshots in {shots}; {time.monotonic() - began:.0f} s in the browser")
