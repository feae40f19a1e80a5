"""What the browser tests and `bench/dashboard_paint.py` share: `softcopy serve` on a home,
Debian's Chromium (never downloaded) through Playwright, and a fresh offline tab on the
dashboard. No pytest here (the bench imports it); the fixtures are in conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000
SHOTS = REPO / "docs" / "screenshots"


def missing() -> str | None:
    """Why browser tests cannot run here (None: they can)."""
    if not CHROMIUM.exists():
        return f"browser tests skipped: {CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests skipped: the playwright package is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(home: Path, *, token: str = "browser-test-token", wait: float = 120) -> Iterator[str]:
    """`softcopy serve` on `home` (its own SQLite database, whatever the caller's
    SOFTCOPY_DATABASE_URL); yields the dashboard URL it prints (with its token), and stops
    the server (Ctrl-C, then kill) on the way out."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTCOPY_DATABASE_URL"}
    env |= {"SOFTCOPY_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    args = ["--port", str(free_port()), "--token", token]
    if os.geteuid() == 0:
        args.append("--allow-root")
    server = subprocess.Popen(
        [sys.executable, "-m", "softcopy", "serve", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        url, seen = None, []
        deadline = time.monotonic() + wait
        assert server.stdout is not None
        while url is None and time.monotonic() < deadline and server.poll() is None:
            line = server.stdout.readline()
            seen.append(line)
            if line.startswith("dashboard: "):
                url = line.split(" ", 1)[1].strip()
        if url is None:
            raise RuntimeError("softcopy serve printed no dashboard URL:\n" + "".join(seen[-30:]))
        os.set_blocking(server.stdout.fileno(), False)  # let the server log without blocking
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cancel_live_jobs(home: Path) -> None:
    """Force-cancel what a test left running (its worker processes end with it)."""
    from softcopy.ingestion import service
    from softcopy.ingestion.states import JOB_LIVE

    ctx = service.open_context(home)
    for job in service.list_jobs(ctx):
        if job.status in JOB_LIVE and job.id is not None:
            service.cancel(ctx, job_id=job.id, force=True)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(  # type: ignore[no-untyped-def]
    browser,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    ready: str | None = ".sc-btn-show",
    timeout_ms: int = WAIT_MS,
):
    """A fresh tab at this viewport on `url`, waiting for `ready` (a CSS selector; None: do
    not wait). Requests off this server are refused (offline: no CDN fetches); uncaught
    errors in the page (the heatmap's module among them) are kept in `page.js_errors`."""
    host = urlparse(url).netloc
    context = browser.new_context(viewport={"width": width, "height": height})
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if urlparse(route.request.url).netloc == host else route.abort()
        ),
    )
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.set_default_timeout(timeout_ms)
    began = time.monotonic()
    page.goto(url)  # Voilà sends the page; the kernel's thread is still opening the home
    if ready is not None:
        # the budget a page had when Voilà sent it only once the home was open: one wait
        # for the page, one for what is ready
        left = 2 * timeout_ms - (time.monotonic() - began) * 1000
        try:
            page.locator(ready).first.wait_for(timeout=max(left, timeout_ms / 10))
        except Exception as error:
            facts = page.locator(".sc-dashboard-facts").all_inner_texts()
            raise AssertionError(f"{ready} never showed; the dashboard says {facts}") from error
    return page


def tab(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Choose a dashboard tab and wait for its panel (a tab is built when first chosen)."""
    page.locator(".lm-TabBar-tab", has_text=name).click()
    page.locator(f".sc-{name.lower()}").first.wait_for(state="visible")


def keep_screenshots(folder: Path) -> None:
    """Copy a test's screenshots to docs/screenshots/ with SOFTCOPY_UPDATE_SCREENSHOT=1."""
    if os.environ.get("SOFTCOPY_UPDATE_SCREENSHOT") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        for png in folder.glob("*.png"):
            shutil.copy(png, SHOTS / png.name)
