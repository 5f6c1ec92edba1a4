"""Screenshots of every page at the viewports a class uses, in light and dark mode.

`make screens` (or `python -m bench.screens [slug ...]`) starts the real server, opens each
page in headless Chromium at 1440x900, 1280x720 (a projector), 390x844 (a phone) and 1440x900
in dark mode, waits for the script to finish and writes full-page PNGs to bench/out/screens/
(`<slug>_<view>.png`; for the projector also `<slug>_1280_first.png`, the first screen only,
which is what a class sees before anyone scrolls). Nothing is asserted: the pictures are for
people to look at before a release.

Streamlit scrolls its main area inside the window, so a browser's "full page" screenshot holds
only the first screen: the window is made as tall as the page's content before the full shot.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from bench.app_bench import Server
from core.concepts import available_concepts

OUT = Path(__file__).resolve().parent / "out" / "screens"
VIEWS = (
    ("1440", {"width": 1440, "height": 900}, "light"),
    ("1280", {"width": 1280, "height": 720}, "light"),
    ("phone", {"width": 390, "height": 844}, "light"),
    ("dark", {"width": 1440, "height": 900}, "dark"),
)
DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# The tallest scrolling content of the page (Streamlit's main area scrolls inside the window).
CONTENT_HEIGHT_JS = """
() => {
  const block = document.querySelector('[data-testid="stMainBlockContainer"]');
  for (let a = block && block.parentElement; a; a = a.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(a).overflowY)) return a.scrollHeight;
  }
  return document.documentElement.scrollHeight;
}
"""
MAX_HEIGHT = 16_000  # px: Chromium's screenshots stay reliable below this


def _wait_healthy(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not come up within {timeout:.0f} s")


def _shots(page, stem: str, viewport: dict, first_screen: bool) -> list[Path]:
    """The first screen (when asked) and the whole page, the window stretched to its content."""
    paths = []
    if first_screen:
        paths.append(OUT / f"{stem}_first.png")
        page.screenshot(path=str(paths[-1]))
    height = min(int(page.evaluate(CONTENT_HEIGHT_JS)), MAX_HEIGHT)
    if height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(1500)  # charts redraw after a resize
        page.wait_for_selector(DONE, timeout=600_000)
    paths.append(OUT / f"{stem}.png")
    page.screenshot(path=str(paths[-1]), full_page=True)
    return paths


def shoot(slugs: list[str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    server = Server.start()
    written: list[Path] = []
    try:
        _wait_healthy(server.url)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            for slug in slugs:
                for name, viewport, scheme in VIEWS:
                    page = browser.new_page(viewport=viewport, color_scheme=scheme)
                    t0 = time.perf_counter()
                    page.goto(f"{server.url}/{slug}", wait_until="domcontentloaded")
                    page.wait_for_selector(DONE, timeout=600_000)
                    page.wait_for_timeout(1500)  # charts draw after the script finishes
                    page.wait_for_selector(DONE, timeout=600_000)
                    written += _shots(page, f"{slug or 'home'}_{name}", viewport, name == "1280")
                    print(f"{slug or 'home'}_{name}: {time.perf_counter() - t0:.1f} s", flush=True)
                    page.close()
            browser.close()
    finally:
        server.stop()
    return written


if __name__ == "__main__":
    wanted = sys.argv[1:] or ["", *[c.slug for c in available_concepts()]]
    shoot(wanted)
