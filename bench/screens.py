"""Screenshots of every page at the viewports a class uses, in light and dark mode.

`make screens` (or `python -m bench.screens [slug ...]`) starts the real server, opens each
page in headless Chromium at 1440x900, 1280x720 (a projector), 390x844 (a phone) and 1440x900
in dark mode, waits for the script to finish and writes full-page PNGs to bench/out/screens/.
Nothing is asserted: the pictures are for people to look at before a release.
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
                    path = OUT / f"{slug or 'home'}_{name}.png"
                    page.screenshot(path=str(path), full_page=name != "1280")
                    print(f"{path.name}: {time.perf_counter() - t0:.1f} s", flush=True)
                    written.append(path)
                    page.close()
            browser.close()
    finally:
        server.stop()
    return written


if __name__ == "__main__":
    wanted = sys.argv[1:] or ["", *[c.slug for c in available_concepts()]]
    shoot(wanted)
