"""The app in a real Streamlit server driven by headless Chromium: start-up, first render of
every page, reruns after a slider move, and a class of learners opening one page at once."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import ROOT, Row, mb, median, note, percentile, seconds
from core.concepts import available_concepts, concept

READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
EXCEPTION = "[data-testid='stException']"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE_TIMEOUT_S = 240.0
SLIDERS = ((19, "decoding.temperature"), (8, "attention.layer"))
CLASS_SIZES = (8, 30)
MEMORY_TARGET = 1.5e9


def server_rss(pid: int) -> int:
    """Resident memory of the server process and all its children."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_split(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server tree and by everything else this bench started
    (the Playwright driver and Chromium), to tell whose work a slow page was."""
    server = _tree(server_pid)
    ids = {p.pid for p in server}
    others = [p for p in psutil.Process().children(recursive=True) if p.pid not in ids]
    return cpu_seconds(server), cpu_seconds(others)


class MemorySampler(threading.Thread):
    """Samples the server's RSS every 0.2 s and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, server_rss(self.pid))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls) -> Server:
        port = free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"llm-explorer-bench-{port}.log"
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        return cls(port, proc, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this bench started, by its id
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def heading(number: int | None) -> str:
    if number is None:
        return "LLM Explorer"
    c = concept(number)
    return f"{c.number:02d} · {c.title}"


def slug_url(base: str, number: int | None) -> str:
    return base + "/" if number is None else f"{base}/{concept(number).slug}"


async def wait_finished(page, title: str, deadline: float) -> float:
    """Time at which the page shows its title and its script has stopped running (and stays
    stopped for 0.4 s: a fragment or st.rerun may start another run right after)."""

    def left() -> float:
        return max(1.0, (deadline - time.perf_counter()) * 1000)

    await page.locator("h1", has_text=title).first.wait_for(timeout=left())
    while True:
        await page.wait_for_selector(READY, timeout=left())
        done = time.perf_counter()
        await page.wait_for_timeout(400)
        if await page.locator(READY).count():
            return done


@dataclass
class Visit:
    seconds: float
    error: str | None
    context: object | None = None


async def visit(browser, url: str, title: str, keep_open: bool = False) -> Visit:
    """One learner: a fresh browser context (a new Streamlit session) opening one page."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    start = time.perf_counter()
    error = None
    try:
        await page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_S * 1000)
        done = await wait_finished(page, title, start + PAGE_TIMEOUT_S)
        if await page.locator(EXCEPTION).count():
            error = "exception"
    except Exception as exc:  # a timeout or a dropped connection both count as an error
        done, error = time.perf_counter(), type(exc).__name__
    if not keep_open:
        await ctx.close()
        ctx = None
    return Visit(done - start, error, ctx)


async def server_start(browser, server_factory) -> tuple[Server, float]:
    """Seconds from launching the server process to an interactive home page."""
    page = await browser.new_page()
    start = time.perf_counter()
    server = server_factory()
    while True:
        try:
            await page.goto(server.url + "/", wait_until="domcontentloaded", timeout=5000)
            break
        except Exception:
            if time.perf_counter() - start > 120 or server.proc.poll() is not None:
                raise RuntimeError(f"server did not start; see {server.log}") from None
            await asyncio.sleep(0.1)
    done = await wait_finished(page, heading(None), start + 120)
    await page.close()
    return server, done - start


OBSERVE = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__runs = [];
  new MutationObserver(() => window.__runs.push(
    [app.getAttribute('data-test-script-state'), performance.now()]
  )).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
RERUN_DONE = """t0 => {
  const s = window.__runs.filter(x => x[1] > t0);
  const i = s.findIndex(x => x[0] !== 'notRunning');
  if (i < 0) return null;
  const end = s.slice(i + 1).find(x => x[0] === 'notRunning');
  return end ? end[1] : null;
}"""


async def slider_reruns(browser, base: str, number: int, key: str, moves: int = 5) -> list[float]:
    """Seconds from an arrow-key move of the slider to the end of the rerun it causes."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    try:
        await page.goto(slug_url(base, number), wait_until="domcontentloaded")
        await wait_finished(page, heading(number), time.perf_counter() + PAGE_TIMEOUT_S)
        await page.evaluate(OBSERVE)
        css_key = re.sub(r"[^a-zA-Z0-9_-]", "-", key)
        # Streamlit 1.67's slider is a react-aria group around a visually hidden range input
        thumb = page.locator(f".st-key-{css_key} input[type='range']").first
        await thumb.wait_for(state="attached", timeout=30000)
        times = []
        for i in range(moves):
            await thumb.focus()
            t0 = await page.evaluate("performance.now()")
            await page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
            handle = await page.wait_for_function(RERUN_DONE, arg=t0, timeout=120000)
            times.append((await handle.json_value() - t0) / 1000)
            await page.wait_for_timeout(300)
        return times
    finally:
        await ctx.close()


def _pages() -> list[int]:
    return [c.number for c in available_concepts()]


async def run_app_bench() -> tuple[list[Row], list[str]]:
    from playwright.async_api import async_playwright

    rows: list[Row] = []
    notes: list[str] = []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        note("no chromium on PATH: browser measurements skipped")
        return [Row("Browser measurements", "skipped: no chromium")], ["No Chromium installed."]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        note("starting the server")
        server, startup = await server_start(browser, Server.start)
        sampler = MemorySampler(server.proc.pid)
        sampler.start()
        try:
            idle = server_rss(server.proc.pid)
            rows.append(
                Row(
                    "Server start to interactive home page",
                    seconds(startup),
                    f"server RSS then: {mb(idle)}",
                )
            )
            render_rows, renders = await _page_renders(browser, server, notes)
            heaviest = max(renders, key=renders.get)
            single = renders[heaviest]
            rows += render_rows
            rows += await _sliders(browser, server, notes, renders)
            rows += await _classes(browser, server, heaviest, single, notes)
            rows.append(
                Row(
                    "Peak server memory (RSS incl. children, sampled every 0.2 s)",
                    mb(sampler.peak),
                    f"idle after start: {mb(idle)}",
                    f"{sampler.peak / max(idle, 1):.1f}x",
                    "< 1.5 GB",
                    "yes"
                    if sampler.peak < MEMORY_TARGET
                    else f"NO (+{mb(sampler.peak - MEMORY_TARGET)})",
                )
            )
        finally:
            sampler.stop()
            server.stop()
            await browser.close()
    return rows, notes


async def _page_renders(
    browser, server: Server, notes: list[str]
) -> tuple[list[Row], dict[int, float]]:
    """First render of every page in the registry that exists, seconds by page number."""
    numbers = _pages()
    first_model_page = next(
        (n for n in numbers if "get_lm(" in (ROOT / concept(n).page_file).read_text()), None
    )
    if first_model_page is not None:
        note(f"warming the model with page {first_model_page:02d}")
        warm = await visit(
            browser, slug_url(server.url, first_model_page), heading(first_model_page)
        )
        notes.append(
            f"Model warmed by one visit to page {first_model_page:02d} "
            f"({warm.seconds:.1f} s, includes loading the model into the server); "
            "that page's figure below is its second visit."
        )
    times: dict[int, Visit] = {}
    rss_after: dict[int, int] = {}
    for n in numbers:
        times[n] = await visit(browser, slug_url(server.url, n), heading(n))
        rss_after[n] = server_rss(server.proc.pid)
        note(
            f"page {n:02d}: {times[n].seconds:.1f} s"
            + (f" ({times[n].error})" if times[n].error else "")
        )
    secs = {n: v.seconds for n, v in times.items()}
    errors = [f"{n:02d} ({v.error})" for n, v in times.items() if v.error]
    slowest = max(secs, key=secs.get)
    notes.append(
        "Server RSS after each page's first render (pages' caches accumulate): "
        + ", ".join(f"{n:02d}: {r / 1e6:,.0f} MB" for n, r in rss_after.items())
        + "."
    )
    if errors:
        notes.append("Pages that raised or timed out on first render: " + ", ".join(errors))
    return [
        Row(
            f"Page first render, median of {len(secs)} pages (fresh session, warm model)",
            seconds(median(list(secs.values()))),
            f"errors: {len(errors)}",
        ),
        Row(
            "Page first render, slowest",
            f"{seconds(secs[slowest])} (page {slowest:02d})",
            f"fastest: {seconds(min(secs.values()))}",
        ),
    ], secs


async def _sliders(
    browser, server: Server, notes: list[str], renders: dict[int, float]
) -> list[Row]:
    rows = []
    for number, key in SLIDERS:
        c = concept(number)
        if not c.exists():
            msg = f"page {number:02d} ({c.page_file}) does not exist yet: slider rerun skipped"
            note(msg)
            notes.append(msg)
            continue
        try:
            times = await slider_reruns(browser, server.url, number, key)
        except Exception as exc:
            notes.append(
                f"Slider {key} on page {number:02d} could not be measured: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            )
            continue
        first = renders.get(number, float("nan"))
        note(f"page {number:02d} slider {key}: {[round(t, 2) for t in times]}")
        rows.append(
            Row(
                f"Rerun after moving `{key}` (page {number:02d}), median of {len(times)}",
                f"{seconds(median(times))} (slowest {seconds(max(times))})",
                f"first render of page {number:02d}: {seconds(first)}",
                f"{median(times) / first:.2f}x",
            )
        )
    return rows


async def _classes(
    browser, server: Server, heaviest: int, single: float, notes: list[str]
) -> list[Row]:
    """A class opening the heaviest page at once: one browser, one context per learner."""
    rows = []
    for size in CLASS_SIZES:
        note(f"{size} sessions open page {heaviest:02d} at once")
        before = server_rss(server.proc.pid)
        cpu_before, wall_before = cpu_split(server.proc.pid), time.perf_counter()
        visits = await asyncio.gather(
            *(
                visit(browser, slug_url(server.url, heaviest), heading(heaviest), keep_open=True)
                for _ in range(size)
            )
        )
        after = server_rss(server.proc.pid)
        cpu_after, wall = cpu_split(server.proc.pid), time.perf_counter() - wall_before
        notes.append(
            f"{size} sessions: the wave took {wall:.0f} s of wall time, in which the "
            f"server used {cpu_after[0] - cpu_before[0]:.0f} CPU-seconds and Chromium "
            f"with its driver {cpu_after[1] - cpu_before[1]:.0f}, on the same cores."
        )
        times = [v.seconds for v in visits]
        errors = sum(1 for v in visits if v.error)
        kinds = sorted({v.error for v in visits if v.error})
        for v in visits:
            if v.context is not None:
                await v.context.close()
        p50, p95 = median(times), percentile(times, 0.95)
        ok = errors == 0 and after < MEMORY_TARGET
        rows.append(
            Row(
                f"{size} sessions open page {heaviest:02d} at once: server RSS after",
                mb(after),
                f"before: {mb(before)}; one session alone: {seconds(single)}",
                f"p50 {seconds(p50)}, p95 {seconds(p95)}, errors {errors}",
                "0 errors, < 1.5 GB" if size == 30 else "",
                ("yes" if ok else f"NO ({errors} errors {kinds}, RSS {mb(after)})")
                if size == 30
                else "",
            )
        )
    return rows
