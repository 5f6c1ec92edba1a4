"""Screenshots of states the first render does not show, at the same four views as
`bench.screens`: page 20 after the needle-in-a-haystack job has run, page 09 with heads
switched off, page 18 with fast mode on and its comparison run. `python -m bench.screen_states [port] [state ...]` starts its own server from
this checkout (port 8642 unless given; states: needle, heads_off, fast_mode, all unless given), drives
each state in headless Chromium and writes `<slug>_<state>_<view>.png` to bench/out/screens/.
Nothing is asserted.

The needle job runs once, at the first view (its result is then shared with every later
session, as the page promises); the heads are switched off again in every view's session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from bench.common import ROOT
from bench.screens import DONE, OUT, VIEWS, _shots, _wait_healthy

JOB_TIMEOUT_MS = 1_800_000  # the needle trials on a loaded 2-core machine


def _settle(page) -> None:
    page.wait_for_timeout(800)
    page.wait_for_selector(DONE, timeout=600_000)


def needle_done(page) -> None:
    """Page 20: press the needle job's start button if its result is not there yet; wait."""
    recall = page.locator("[data-testid='stMetric']", has_text="Recall")
    start = page.get_by_role("button", name=re.compile(r"^Run \d+ trials"))
    if not recall.count() and start.count():
        start.first.click()
        page.wait_for_timeout(2000)
    recall.first.wait_for(timeout=JOB_TIMEOUT_MS)
    _settle(page)
    recall.first.scroll_into_view_if_needed()


def heads_off(page, heads: tuple[int, ...] = (0, 3, 5)) -> None:
    """Page 09: pick heads in the multiselect "Heads of layer N to switch off"."""
    box = page.locator("[data-testid='stMultiSelect']", has_text="to switch off").first
    for h in heads:
        box.locator("input").click()
        box.locator("input").fill(str(h))  # the dropdown filters to that head; Enter picks it
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        _settle(page)
    page.locator("[data-testid='stMetric']", has_text="KL").first.wait_for(timeout=600_000)
    _settle(page)


def fast_mode(page) -> None:
    """Page 18: fast mode on, Run, then the float32/int8 comparison job."""
    page.get_by_text("Fast mode (int8)").first.click()
    _settle(page)
    page.get_by_role("button", name="Run", exact=True).first.click()
    _settle(page)
    start = page.get_by_role("button", name=re.compile(r"^Generate \d+ tokens with float32"))
    same = page.locator("[data-testid='stMetric']", has_text="Same tokens")
    if not same.count() and start.count():
        start.first.click()
        page.wait_for_timeout(2000)
    same.first.wait_for(timeout=JOB_TIMEOUT_MS)
    _settle(page)


STATES = (
    ("context_window", "needle", needle_done),
    ("multi_head", "heads_off", heads_off),
    ("inference_loop", "fast_mode", fast_mode),
)


def main(port: int = 8642, only: tuple[str, ...] = ()) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
        + ["--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            for slug, state, drive in STATES:
                if only and state not in only:
                    continue
                for name, viewport, scheme in VIEWS:
                    page = browser.new_page(viewport=viewport, color_scheme=scheme)
                    t0 = time.perf_counter()
                    page.goto(f"{url}/{slug}", wait_until="domcontentloaded")
                    page.wait_for_selector(DONE, timeout=600_000)
                    _settle(page)
                    drive(page)
                    _shots(page, f"{slug}_{state}_{name}", viewport, name == "1280")
                    print(f"{slug}_{state}_{name}: {time.perf_counter() - t0:.1f} s", flush=True)
                    page.close()
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group this script started, by its id
        server.wait(timeout=30)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8642, tuple(sys.argv[2:]))
