"""The job views in Debian's Chromium (Playwright) against `softcopy serve` on the session's
demo home (conftest.py; test_browser_coverage shares it and keeps to older days, these tests
to the last 30 and their own jobs), at 1400x900 and 390x844: the server root redirects to
the dashboard; a deep link (?job=N) opens the dashboard on that job with its title, pace,
its timeline (Gantt) and the newest page of its log, which pages backwards and filters; a
large queued job asks before it is cancelled and then shows its summary; on a phone the
job's buttons are on the screen. Screenshots go to the test's tmp folder, and to
docs/screenshots/ with SOFTCOPY_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.e2e import browser as web

if (reason := web.missing()) is not None:
    pytest.skip(reason, allow_module_level=True)

from playwright import sync_api

WAIT_MS = web.WAIT_MS


@pytest.fixture(scope="module")
def jobs(shared_home: Path) -> dict[str, int]:
    """A finished backfill of the last 30 days and a large queued one no worker takes (made
    here, inline, so the browser only reads them)."""
    from softcopy.ingestion import service
    from softcopy.ingestion.states import PlanMode

    ctx = service.open_context(shared_home)
    today = datetime.now(UTC).date()

    month = service.PlanOptions(
        mode=PlanMode.backfill_range,
        range_start_day=today - timedelta(days=29),
        range_end_day=today,
    )
    # weekly steps: several bars a row in the timeline, and over 200 log rows to page
    done = service.run(ctx, options=month, executor="inline", chunk_days=7)
    month.force = True  # the same cells again: a job as large, waiting for a worker
    queued = service.enqueue(ctx, options=month, executor="inline")
    assert done.job is not None and queued.job is not None
    assert queued.job.job.cells_total >= 100  # large: Cancel asks first
    return {"done": done.job.job.id or 0, "queued": queued.job.job.id or 0}


def open_page(chromium, url: str, width: int, height: int, ready: str):  # type: ignore[no-untyped-def]
    sync_api.expect.set_options(timeout=WAIT_MS)
    return web.open_page(chromium, url, width=width, height=height, ready=ready)


def test_root_redirect_deep_link_timeline_log_paging_and_cancel(
    shared_url: str, browser, jobs: dict[str, int], shots: Path
) -> None:
    expect = sync_api.expect
    began = time.monotonic()
    token = shared_url.split("?", 1)[1]
    root = f"{urlparse(shared_url).scheme}://{urlparse(shared_url).netloc}/?{token}"

    # The server root redirects to the dashboard keeping the query: the token, and a deep
    # link (?job=N) that opens the dashboard on the finished job: title, pace, timeline.
    done = jobs["done"]
    page = open_page(browser, f"{root}&job={done}", 1400, 900, ".sc-job-title")
    assert "/voila/render/ingestion.ipynb" in page.url and token in page.url
    print(f"rendered at {time.monotonic() - began:.1f} s")
    header = page.locator(".sc-job-header")
    expect(header).to_contain_text(f"Job {done} · backfill ")
    expect(header).to_contain_text("· all sources")
    expect(header).to_contain_text("succeeded")
    expect(page.locator(".sc-job-link")).to_have_attribute("href", re.compile(rf"\?job={done}$"))
    progress = page.locator(".sc-progress-label")
    expect(progress).to_have_text(re.compile(r"^(\d+)/\1 cells \(100%\) · elapsed .+ cells/s$"))
    assert page.locator(".lm-TabBar-tab.lm-mod-current").inner_text().strip() == "Jobs"
    bars = page.locator("svg.sc-timeline rect.sc-bar")
    expect(bars.first).to_be_visible()
    assert bars.count() > 0
    row = page.locator(f".sc-job-row-{done}")
    expect(row).to_contain_text("cells/s")

    caption = page.locator(".sc-log-caption")
    expect(caption).to_contain_text(re.compile(r"showing the last 200 of [\d,]+ rows"))
    total = int(re.search(r"of ([\d,]+) rows", caption.inner_text()).group(1).replace(",", ""))
    assert total > 200
    page.screenshot(path=shots / "job-view.png", full_page=True)
    page.locator(".sc-log-view .sc-btn-older").click()
    expect(caption).to_contain_text(f"showing rows {max(total - 399, 1):,} to {total - 200:,}")
    page.locator(".sc-log-view .sc-btn-newest").click()
    expect(caption).to_contain_text("showing the last 200")
    page.locator(".sc-log-level select").select_option("error")
    expect(caption).to_contain_text("no matching rows")
    page.locator(".sc-log-level select").select_option("any")
    page.locator(".sc-log-source select").select_option("notes")
    expect(caption).to_contain_text("matching rows")

    # A large queued job, chosen in the list: Cancel asks first; then its summary says
    # where it stopped.
    queued = jobs["queued"]
    page.locator(f".sc-job-row-{queued} button").click()
    expect(header).to_contain_text(f"Job {queued}")
    expect(page.locator(".sc-now-running")).to_contain_text("waiting for a worker")
    page.locator(".sc-job .sc-btn-cancel").click()
    confirm = page.locator(".sc-cancel-confirm")
    expect(confirm).to_contain_text(f"Cancel job {queued}?")
    page.screenshot(path=shots / "job-cancel-confirm.png", full_page=True)
    page.locator(".sc-btn-cancel-the-job").click()
    expect(header).to_contain_text("cancelled")
    expect(confirm).to_be_hidden()
    expect(page.locator(".sc-progress-label")).to_have_text(re.compile(r"^0/[\d,]+ cells \(0%\)"))
    expect(page.locator(".sc-job .sc-btn-resume")).to_be_enabled()
    expect(page.locator(".sc-job .sc-btn-cancel")).to_be_disabled()
    page.screenshot(path=shots / "job-cancelled.png", full_page=True)
    page.context.close()
    print(f"{time.monotonic() - began:.0f} s in the browser")


def test_a_phone_reaches_every_job_button(
    shared_url: str, browser, jobs: dict[str, int], shots: Path
) -> None:
    expect = sync_api.expect
    done = jobs["done"]
    page = open_page(browser, f"{shared_url}&job={done}", 390, 844, ".sc-job-title")
    expect(page.locator(".sc-job-header")).to_contain_text(f"Job {done}")
    for name in ("resume", "cancel", "verify", "older", "newest", "next-steps"):
        found = page.locator(f".sc-job .sc-btn-{name}").first
        found.scroll_into_view_if_needed()
        box = found.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)
    scroller = page.locator(".sc-timeline-area")
    width = scroller.evaluate("e => [e.clientWidth, e.scrollWidth]")
    assert width[0] <= 390 < width[1]  # the timeline scrolls inside its box, not the page
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390, page_width
    page.locator(".sc-job .sc-btn-verify").click()
    expect(page.locator(".sc-verification")).to_contain_text("cells checked")
    page.screenshot(path=shots / "job-view-phone.png", full_page=True)
