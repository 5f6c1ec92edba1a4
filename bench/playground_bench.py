"""Page 02's Play in a real browser: how many redraws a second the learner sees, and the share
of a server core one learner's Play costs (the targets: at least 5 redraws a second, at most 35 % of
a core).

The baseline is the page as it was before the redraw was reworked (commit BASELINE: Streamlit's
full garbage collection after every fragment rerun scanning the loaded model's 470,000 objects,
the loss chart's spec validated by Altair every redraw, rest paced by the clock), served from a
`git archive` of that commit in the same run, in the same browser, on the same machine.

`python -m bench.playground_bench` prints the table; `--now [--dark]`, `--deep` and
`--baseline` measure one case and save a screenshot while playing in /tmp.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.app_bench import cpu_seconds, free_port
from bench.common import ROOT, Row, median, note

BASELINE = "e7e937f"  # main before the redraw rework (one image per layer, Altair loss chart)
WINDOW_S = 10.0
TARGET_FPS = 5.0
TARGET_SHARE = 0.35
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# The costliest network the controls allow (spiral, six layers of eight, batch size 1), in the
# page's address: an epoch alone is 250 SGD steps there.
DEEP = "?layers.dataset=spiral&layers.depth=6&layers.batch=1&" + "&".join(
    f"layers.width{i}=8" for i in range(1, 7)
)

# Polls the page every 10 ms: the Epoch metric's text and the source of the picture of the
# plane (the decision boundary), each time either changes on screen, and the page's own
# "Redraw N" captions.
WATCH_JS = """
() => {
  window.__epochs = []; window.__pictures = []; window.__captions = [];
  let epoch = '', src = '', caption = '';
  const read = () => {
    for (const m of document.querySelectorAll("[data-testid='stMetric']")) {
      const text = m.innerText;
      if (text.startsWith('Epoch') && text !== epoch) {
        epoch = text; window.__epochs.push([performance.now(), text.split('\\n').pop()]);
      }
    }
    const area = i => i.getBoundingClientRect().width * i.getBoundingClientRect().height;
    const imgs = [...document.querySelectorAll("[data-testid='stMain'] img")];
    const big = imgs.reduce((a, i) => (!a || area(i) > area(a) ? i : a), null);
    if (big && big.complete && big.naturalWidth > 0 && big.src !== src) {
      src = big.src; window.__pictures.push(performance.now());
    }
    for (const c of document.querySelectorAll("[data-testid='stCaptionContainer']")) {
      const t = c.innerText;
      if (t.startsWith('Redraw ') && t !== caption) { caption = t; window.__captions.push(t); }
    }
  };
  window.__watch = setInterval(read, 10);
}
"""


@dataclass(frozen=True)
class PlayRun:
    redraws: int  # times the Epoch metric changed on screen (every redraw trains an epoch)
    pictures: int  # times the largest picture (the plane while playing) changed on screen
    epochs: int  # epochs the Epoch metric advanced
    seconds: float
    server_share: float  # CPU seconds of the server / wall seconds
    browser_share: float  # CPU seconds of Chromium and Playwright's driver / wall seconds
    captions: tuple[str, ...]  # the page's own "Redraw N: training .. ms, drawing .. ms" lines

    @property
    def fps(self) -> float:
        return self.redraws / self.seconds

    @property
    def server_ms(self) -> float:
        """The server's CPU per redraw: everything, Streamlit's own work included."""
        return 1000 * self.server_share * self.seconds / max(self.redraws, 1)

    @property
    def page_ms(self) -> float:
        """Median training + drawing per redraw as the page's caption reports it (CPU time
        now; the clock before the rework)."""
        return median([sum(redraw_ms(c)[:2]) for c in self.captions])


def redraw_ms(caption: str) -> tuple[float, float, float]:
    """(training, drawing, rest) in ms from a 'Redraw N: training .. drawing .. rest' caption."""
    train = re.search(r"training (\d+) ms", caption)
    draw = re.search(r"drawing (\d+) ms", caption)
    rest = re.search(r"then (\d+) ms of rest", caption)
    return tuple(float(m.group(1)) if m else float("nan") for m in (train, draw, rest))


def _start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    _stop(proc)
    raise RuntimeError(f"the server in {root} did not come up within 120 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the session this bench started, by its id
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def measure_play(
    root: Path = ROOT,
    seconds: float = WINDOW_S,
    scheme: str = "light",
    screenshot: Path | None = None,
    query: str = "",
) -> PlayRun:
    """Open page 02 at 1280x720, press Play, watch for `seconds`: redraws shown (the Epoch
    metric changing), epochs advanced, CPU of the server and of the browser (Chromium and
    Playwright's driver) over the same window."""
    from playwright.sync_api import sync_playwright

    proc, url = _start_server(root)
    try:
        server = psutil.Process(proc.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720}, color_scheme=scheme)
            page.goto(url + "/layers" + query, wait_until="domcontentloaded")
            page.wait_for_selector(DONE, timeout=600_000)
            page.get_by_text("Inside the real model").wait_for(timeout=600_000)
            page.wait_for_selector(DONE, timeout=600_000)
            page.wait_for_timeout(1000)
            mine = {c.pid for c in psutil.Process().children(recursive=True)}
            chrome = [psutil.Process(pid) for pid in mine if pid != proc.pid]
            page.get_by_role("button", name="Play").click()
            page.get_by_text("Redraw 1:").wait_for(timeout=60_000)
            page.evaluate(WATCH_JS)
            t0, s0, b0 = time.perf_counter(), cpu_seconds([server]), cpu_seconds(chrome)
            page.wait_for_timeout(seconds * 1000 / 2)
            if screenshot is not None:
                page.locator("[data-testid='stMetric']").first.evaluate(
                    "m => m.scrollIntoView({block: 'center'})"
                )  # the plane, the network and the metrics
                page.screenshot(path=str(screenshot))
            page.wait_for_timeout(seconds * 1000 / 2)
            wall = time.perf_counter() - t0
            s1, b1 = cpu_seconds([server]), cpu_seconds(chrome)
            seen = page.evaluate(
                "() => { clearInterval(window.__watch); return [window.__epochs, window.__pictures, window.__captions]; }"
            )
            browser.close()
    finally:
        _stop(proc)
    epochs = [int(e.split()[0]) for _, e in seen[0] if e.split() and e.split()[0].isdigit()]
    return PlayRun(
        redraws=max(0, len(epochs) - 1),  # the first entry is the state when watching began
        pictures=max(0, len(seen[1]) - 1),
        epochs=(epochs[-1] - epochs[0]) if epochs else 0,
        seconds=wall,
        server_share=(s1 - s0) / wall,
        browser_share=(b1 - b0) / wall,
        captions=tuple(seen[2]),
    )


def baseline_tree(commit: str = BASELINE) -> Path | None:
    """The app as it was at `commit`, unpacked in a temporary folder (None without git)."""
    if shutil.which("git") is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="llmx-play-baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _rows(new: PlayRun, old: PlayRun | None, deep: PlayRun) -> list[Row]:
    def shown(r: PlayRun) -> str:
        return f"{r.fps:.1f}/s ({r.redraws} in {r.seconds:.0f} s, {r.epochs} epochs)"

    def share(r: PlayRun) -> str:
        return f"{r.server_share:.0%} (Chromium: {r.browser_share:.0%})"

    def per_redraw(r: PlayRun) -> str:
        return f"{r.server_ms:.0f} ms (the page's caption: {r.page_ms:.0f} ms)"

    return [
        Row(
            "Page 02 Play: redraws a second Chromium shows (1280x720; the Epoch metric changes)",
            shown(new),
            shown(old) if old else "",
            f"{new.fps / max(old.fps, 1e-9):.1f}x" if old else "",
            f"at least {TARGET_FPS:.0f}/s",
            "yes" if new.fps >= TARGET_FPS else "NO",
        ),
        Row(
            "Page 02 Play: the server process's CPU over those seconds (share of a core)",
            share(new),
            share(old) if old else "",
            f"{old.server_share / max(new.server_share, 1e-9):.1f}x less" if old else "",
            f"at most {TARGET_SHARE:.0%}",
            "yes" if new.server_share <= TARGET_SHARE else "NO",
        ),
        Row(
            "Page 02 Play: server CPU per redraw (the page's caption: its own training and "
            "drawing; before the rework its clock time)",
            per_redraw(new),
            per_redraw(old) if old else "",
            f"{old.server_ms / max(new.server_ms, 1e-9):.1f}x less" if old else "",
        ),
        Row(
            "Page 02 Play, costliest network (spiral, 6 layers of 8, batch size 1): redraws a "
            "second and the server's share of a core (the pacing holds the share)",
            f"{deep.fps:.1f}/s at {deep.server_share:.0%}, {deep.server_ms:.0f} ms a redraw",
            "",
            "",
            f"at most {TARGET_SHARE:.0%}",
            "yes" if deep.server_share <= TARGET_SHARE else "NO",
        ),
    ]


def rows() -> list[Row]:
    note(
        f"playground: page 02's Play in Chromium for {WINDOW_S:.0f} s: defaults, the costliest "
        f"network, and the defaults at {BASELINE}"
    )
    new = measure_play()
    deep = measure_play(query=DEEP)
    old_root = baseline_tree()
    old = None
    if old_root is not None:
        try:
            old = measure_play(old_root)
        finally:
            shutil.rmtree(old_root, ignore_errors=True)
    return _rows(new, old, deep)


if __name__ == "__main__":
    from bench.common import table

    if "--baseline" in sys.argv:
        tree = baseline_tree()
        try:
            run = measure_play(tree, screenshot=Path("/tmp/play_baseline.png"))
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        print(run, run.fps, run.server_ms, run.page_ms)
    elif "--deep" in sys.argv:
        run = measure_play(query=DEEP)
        print(run.captions[-2:], run.fps, run.server_share, run.server_ms, run.page_ms)
    elif "--now" in sys.argv:
        scheme = "dark" if "--dark" in sys.argv else "light"
        run = measure_play(scheme=scheme, screenshot=Path(f"/tmp/play_now_{scheme}.png"))
        print(
            run.captions[-3:],
            run.redraws,
            run.pictures,
            run.fps,
            run.server_share,
            run.browser_share,
            run.server_ms,
            run.page_ms,
        )
    else:
        print(table(rows()), flush=True)
