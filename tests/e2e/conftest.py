"""Fixtures of the browser tests (helpers in tests/e2e/browser.py, which the paint bench
shares): Chromium per test, and one `softcopy serve` per session (per xdist worker) on a
120-day demo home that test_browser_coverage and test_browser_jobs share. They keep to
their own days and jobs, so neither depends on what the other did, in either order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import browser as web

SHARED_DEMO_DAYS = 120  # wider than a phone at 3 px a day: the heatmap must scroll there


@pytest.fixture
def browser() -> Iterator[object]:
    """Function-scoped: Playwright's event loop must start after, and stop before, the loop
    pytest-jupyter's autouse fixtures make for each test."""
    with web.chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo home through today (the server's kernel runs on the real clock)."""
    from softcopy.demo import build_demo

    home = tmp_path_factory.mktemp("browser") / "home"
    build_demo(home, days=SHARED_DEMO_DAYS)
    return home


@pytest.fixture(scope="session")
def shared_url(shared_home: Path) -> Iterator[str]:
    """The dashboard URL of the session's server on `shared_home`."""
    with web.served(shared_home) as url:
        yield url
    web.cancel_live_jobs(shared_home)


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """A test's screenshot folder (copied to docs/screenshots/ on request)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    web.keep_screenshots(folder)
