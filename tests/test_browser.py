"""The real server in headless Chromium: every page opens, finishes, and shows no exception."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.concepts import available_concepts

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.browser
PROJECTOR = (1280, 720)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the Streamlit server did not come up within 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        if CI:
            pytest.fail("Chromium is not installed; .ci/run must install it")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


# Elements of the main area whose right edge is past the viewport and that no scrolling or
# clipping ancestor inside the viewport contains; charts count when their canvas or svg is
# wider than the chart element that holds it (a legend cut off by the column).
OVERFLOW_JS = """
() => {
  const W = window.innerWidth, bad = [];
  const name = el => el.tagName.toLowerCase() + '[' + (el.getAttribute('data-testid') ||
      (typeof el.className === 'string' ? el.className.split(' ')[0] : '')) + ']';
  for (const el of document.querySelectorAll("[data-testid='stMain'] *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right <= W + 1) continue;
    let held = false;  // inside a box that scrolls sideways (a wide table, a code block)
    for (let a = el.parentElement; a; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && a.getBoundingClientRect().right <= W + 1) {
        held = true; break;
      }
    }
    if (!held) bad.push(name(el) + ' ends at ' + Math.round(r.right) + ' px');
  }
  for (const chart of document.querySelectorAll("[data-testid='stVegaLiteChart']")) {
    const r = chart.getBoundingClientRect();
    const col = chart.parentElement.closest("[data-testid='stColumn'], [data-testid='stVerticalBlock']");
    const edge = col ? col.getBoundingClientRect().right : W;
    if (r.width > 0 && r.right > Math.min(edge, W) + 2) bad.push('a chart drawn to ' +
        Math.round(r.right) + ' px in a column ending at ' + Math.round(edge) + ' px');
  }
  return [...new Set(bad)].slice(0, 8);
}
"""


# Streamlit's frontend first looks for its server under the page's own path (/<slug>/_stcore/
# health and host-config), then under the root: those two probes 404 by design on every page
# opened by its address. Any other console error or page error fails the test.
def _streamlit_probe(text: str, url: str) -> bool:
    return "status of 404" in text and url.rstrip("/").endswith(
        ("/_stcore/health", "/_stcore/host-config")
    )


def _listen(page) -> list[str]:
    """Console errors and uncaught page errors of `page`, collected as they happen (a chart
    Vega refuses to draw only says so here: "Access path missing closing quote")."""
    seen: list[str] = []

    def console(msg) -> None:
        url = (msg.location or {}).get("url", "")
        if msg.type == "error" and not _streamlit_probe(msg.text, url):
            seen.append(f"console error: {msg.text} ({url})")

    page.on("console", console)
    page.on("pageerror", lambda err: seen.append(f"page error: {err}"))
    return seen


def _settle(page, timeout: float = 300_000) -> None:
    done = "[data-testid='stApp'][data-test-script-state='notRunning']"
    page.wait_for_selector(done, timeout=timeout)
    page.wait_for_timeout(300)
    page.wait_for_selector(done, timeout=timeout)


def _problems(page, seen: list[str], viewport: tuple[int, int]) -> list[str]:
    """Exceptions on the page, console and page errors so far, overflow on a projector, and
    charts drawn 0 px high (Vega failed)."""
    page.wait_for_timeout(500)  # Vega reports a refused spec just after the script ends
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:  # a busy machine draws slowly: give every chart 15 s before calling it 0 px high
        page.wait_for_function(CHARTS_DRAWN_JS, timeout=15_000)
    except PlaywrightTimeout:
        pass  # measured below: a chart Vega refused stays 0 px high
    errors = page.locator("[data-testid='stException']").all_inner_texts() + list(seen)
    if viewport == PROJECTOR:
        errors += [f"overflow at 1280x720: {b}" for b in page.evaluate(OVERFLOW_JS)]
    errors += [f"a chart {h} px high" for h in page.evaluate(CHART_HEIGHTS_JS) if h < 20]
    return errors


CHARTS_DRAWN_JS = """
() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
  .filter(el => el.offsetParent !== null)
  .every(el => el.getBoundingClientRect().height >= 20)
"""
CHART_HEIGHTS_JS = """
() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
  .filter(el => el.offsetParent !== null)
  .map(el => Math.round(el.getBoundingClientRect().height))
"""


def _open(browser, url: str, viewport: tuple[int, int] = (1400, 1000)) -> tuple[list[str], str]:
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    seen = _listen(page)
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=60_000)
        _settle(page)
        return _problems(page, seen, viewport), page.inner_text("[data-testid='stMain']")
    finally:
        page.close()


def test_home_page_lists_every_available_concept(server, browser):
    errors, text = _open(browser, server)
    assert not errors
    for c in available_concepts():
        assert c.title in text


@pytest.mark.parametrize("concept", available_concepts(), ids=lambda c: c.slug)
def test_every_page_opens_without_exception_or_overflow_on_a_projector(server, browser, concept):
    errors, text = _open(browser, f"{server}/{concept.slug}", PROJECTOR)
    assert not errors, errors
    assert concept.title in text


# Jobs whose results draw charts, run from their buttons as a learner would: (page, buttons
# pressed in order, a tab to open first or None). Every console error after each job fails.
JOBS = [
    ("agents", None, ["Run the agent"]),
    ("limits", "Confident errors", ["Run the capital cities probe"]),
    ("prompting?prompting.techniques=zero-shot", None, ["Measure"]),
]


@pytest.mark.parametrize("slug,tab,buttons", JOBS, ids=[j[0].split("?")[0] for j in JOBS])
def test_pages_show_no_console_error_after_their_jobs(server, browser, slug, tab, buttons):
    import re

    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    seen = _listen(page)
    try:
        page.goto(f"{server}/{slug}", wait_until="domcontentloaded", timeout=60_000)
        _settle(page)
        if tab:
            page.get_by_role("tab", name=tab).click()
        for label in buttons:
            button = page.get_by_role("button", name=re.compile(re.escape(label))).first
            button.scroll_into_view_if_needed()
            button.click()
            page.wait_for_timeout(1500)
            _settle(page, timeout=1_800_000)
            errors = _problems(page, seen, PROJECTOR)
            assert not errors, (label, errors)
        assert page.locator("[data-testid='stVegaLiteChart']").count() > 0
    finally:
        page.close()
