"""The interactive coverage heatmap in Debian's Chromium (Playwright) against `softcopy serve`
on the session's 120-day demo home (conftest.py; test_browser_jobs shares it and keeps to
the last 30 days, these tests to older ones), at 1400x900 and at 390x844: click a cell and
its day opens; drag to select days, Backfill selection previews them in the plan panel,
Run, and the selected cells go from held to current on the heatmap without pressing Show;
on a phone every button is within the screen and only the heatmap scrolls sideways.
Screenshots go to the test's tmp folder, and to docs/screenshots/ with
SOFTCOPY_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e import browser as web
from tests.e2e.conftest import SHARED_DEMO_DAYS

if (reason := web.missing()) is not None:
    pytest.skip(reason, allow_module_level=True)

from playwright import sync_api

DEMO_DAYS = SHARED_DEMO_DAYS
OURS = (DEMO_DAYS - 50, DEMO_DAYS - 41)  # the days we backfill: outside test_browser_jobs'
SOURCE_CELLS = ".sc-hm-cell:not([data-stage])"
NO_WORK = {" ", "e"}  # no data, or no items: nothing to backfill
WAIT_MS = web.WAIT_MS
tab = web.tab


def open_page(chromium, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    sync_api.expect.set_options(timeout=WAIT_MS)
    return web.open_page(chromium, url, width=width, height=height)


def show(page) -> None:  # type: ignore[no-untyped-def]
    page.locator(".sc-btn-show").click()
    page.locator(SOURCE_CELLS).first.wait_for()


def codes(page, source: str, first: str, last: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The codes drawn for a source's row on the days [first, last]."""
    return page.eval_on_selector_all(
        f'{SOURCE_CELLS}[data-source="{source}"]',
        """(cells, [a, b]) => cells.filter(c => c.dataset.first >= a && c.dataset.first <= b)
                              .map(c => c.dataset.code)""",
        [first, last],
    )


def drag(page, start, end) -> None:  # type: ignore[no-untyped-def]
    a, b = start.bounding_box(), end.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=4)
    page.mouse.up()


def test_click_select_backfill_and_watch_cells_turn_current(
    shared_url: str, browser, shots: Path
) -> None:
    expect = sync_api.expect
    began = time.monotonic()
    page = open_page(browser, shared_url, 1400, 900)
    show(page)
    print(f"shown at {time.monotonic() - began:.1f} s")
    notes = page.locator(f'{SOURCE_CELLS}[data-source="notes"]')
    assert notes.count() == DEMO_DAYS  # a day a square at this range

    # A click opens its day in detail.
    with_data = page.locator(f'{SOURCE_CELLS}[data-source="notes"]:not([data-code=" "])')
    day = with_data.nth(5).get_attribute("data-first")
    with_data.nth(5).click()
    details = page.locator(".sc-day-details")
    expect(details).to_contain_text(str(day))
    expect(details).to_contain_text("expected")
    assert page.locator(".sc-coverage-day input").input_value() == day

    # A source's row opens to its stages.
    page.locator('.sc-hm-source[data-source="notes"]').click()
    expect(page.locator('.sc-hm-cell[data-source="notes"][data-stage="embed"]')).to_have_count(
        DEMO_DAYS
    )

    # Click, then shift-click: the days between are selected; Clear selection undoes it.
    expect(page.locator(".sc-btn-backfill-selection")).to_be_disabled()
    notes.nth(0).click()
    notes.nth(3).click(modifiers=["Shift"])
    expect(page.locator(".sc-selection")).to_contain_text("(4 days)")
    page.locator(".sc-btn-clear-selection").click()
    expect(page.locator(".sc-selection")).to_contain_text("no days selected")

    # Drag over ten days of notes: the selection, then Backfill selection.
    expect(page.locator(".sc-btn-backfill-selection")).to_be_disabled()
    drag(page, notes.nth(OURS[0]), notes.nth(OURS[1]))
    first = notes.nth(OURS[0]).get_attribute("data-first")
    last = notes.nth(OURS[1]).get_attribute("data-first")
    expect(page.locator(".sc-selection")).to_contain_text(f"{first} … {last} (10 days)")
    expect(page.locator(".sc-hm-selection")).to_have_count(1)
    page.screenshot(path=shots / "coverage-desktop.png")
    page.locator(".sc-btn-backfill-selection").click()
    preview = page.locator(".sc-plan-preview")
    expect(preview).to_contain_text(re.compile(r"[1-9]\d* cells"))
    page.screenshot(path=shots / "plan-from-selection.png")

    # Run it; back on Coverage the cells are held, then current, without pressing Show.
    print(f"previewed at {time.monotonic() - began:.1f} s")
    page.locator(".sc-btn-run").click()
    expect(page.locator(".sc-job-header")).to_contain_text(re.compile("queued|running|succeeded"))
    tab(page, "Coverage")
    seen: set[str] = set()
    deadline = time.monotonic() + 3 * WAIT_MS / 1000  # a worker starts, runs, ends
    while time.monotonic() < deadline:
        now = set(codes(page, "notes", str(first), str(last))) - NO_WORK
        seen |= now
        if now == {"c"}:
            break
        page.wait_for_timeout(50)
    assert set(codes(page, "notes", str(first), str(last))) - NO_WORK == {"c"}
    assert seen & {"h", "r"}, f"the job was never drawn live: {seen}"
    print(f"current at {time.monotonic() - began:.1f} s")
    page.screenshot(path=shots / "coverage-after-backfill.png")
    assert page.js_errors == []
    page.context.close()


def test_phone_reaches_every_button_and_only_the_heatmap_scrolls(
    shared_url: str, browser, shots: Path
) -> None:
    width = 390
    page = open_page(browser, shared_url, width, 844)
    show(page)
    scroller = page.locator(".sc-hm-scroll")
    assert scroller.evaluate("el => el.scrollWidth > el.clientWidth")  # the heatmap scrolls
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page does not
    page.screenshot(path=shots / "coverage-phone.png", full_page=True)
    for name in ["Coverage", "Plan", "Jobs", "Reconcile", "Search"]:
        tab(page, name)
        # every visible button and input, by its left and right edge (one round trip a tab)
        edges = page.evaluate(
            """() => [...document.querySelectorAll(
                    '.sc-dashboard .jupyter-button, .sc-dashboard .widget-inline-hbox input')]
                .filter(el => el.offsetParent !== null)
                .map(el => { const r = el.getBoundingClientRect();
                             return [el.textContent || el.type, r.left, r.right]; })"""
        )
        assert any(text for text, _, _ in edges), name
        outside = [e for e in edges if e[1] < 0 or e[2] > width]
        assert not outside, (name, outside)
    tab(page, "Plan")
    page.screenshot(path=shots / "plan-phone.png", full_page=True)
    assert page.js_errors == []
    page.context.close()
