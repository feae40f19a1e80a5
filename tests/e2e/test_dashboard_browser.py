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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests skipped: {CHROMIUM} is missing (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests skipped: the playwright package is missing"
)

from softcopy.demo import build_demo  # noqa: E402
from softcopy.ingestion import service  # noqa: E402
from softcopy.ingestion.states import JOB_LIVE  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEMO_DAYS = 730  # long enough that the second job is still running after a reopen
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dashboard") / "home"
    build_demo(home, days=DEMO_DAYS)  # today: the server's kernel runs on the real clock
    return home


@pytest.fixture(scope="module")
def dashboard_url(demo: Path) -> Iterator[str]:
    """`softcopy serve` on the demo home; the dashboard URL it prints (with its token)."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTCOPY_DATABASE_URL"}
    env |= {"SOFTCOPY_HOME": str(demo), "PYTHONUNBUFFERED": "1"}
    args = ["--port", str(free_port()), "--token", "browser-test-token"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    server = subprocess.Popen(
        [sys.executable, "-m", "softcopy", "serve", "--home", str(demo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    url, seen = None, []
    deadline = time.monotonic() + 60
    assert server.stdout is not None
    while url is None and time.monotonic() < deadline and server.poll() is None:
        line = server.stdout.readline()
        seen.append(line)
        if line.startswith("dashboard: "):
            url = line.split(" ", 1)[1].strip()
    assert url, "softcopy serve printed no dashboard URL:\n" + "".join(seen[-30:])
    os.set_blocking(server.stdout.fileno(), False)  # let the server log without blocking
    try:
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        ctx = service.open_context(demo)
        for job in service.list_jobs(ctx):
            if job.status in JOB_LIVE and job.id is not None:
                service.cancel(ctx, job_id=job.id, force=True)


@pytest.fixture
def browser() -> Iterator[object]:
    """Function-scoped: Playwright's event loop must start after, and stop before, the loop
    pytest-jupyter's autouse fixtures make for each test."""
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def open_dashboard(browser, url: str):  # type: ignore[no-untyped-def]
    """A fresh tab on the dashboard; requests off this server are refused (no CDN fetches)."""
    host = urlparse(url).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if urlparse(route.request.url).netloc == host else route.abort()
        ),
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.locator(".sc-btn-show").wait_for()
    return page


def tab(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.locator(".lm-TabBar-tab", has_text=name).click()


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
