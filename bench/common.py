"""Rows of the benchmark table, and writing it out."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.md"


@dataclass(frozen=True)
class Row:
    measure: str
    value: str
    baseline: str = ""  # what it is compared against, measured in the same run
    ratio: str = ""
    target: str = ""
    met: str = ""  # "yes", "NO (...)" or ""


def run_child(args: list[str], tag: str, what: str, timeout: float = 3600, env=None):
    """Run `python args...` from the repository root in a fresh process and return the JSON
    printed after `tag` (e.g. "RESULT ") on one line of its output."""
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    for line in proc.stdout.splitlines():
        if line.startswith(tag):
            return json.loads(line[len(tag) :])
    raise RuntimeError(f"{what} failed: {proc.stderr[-800:]}")


def process_rss() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def seconds(x: float) -> str:
    return f"{x:.2f} s"


def mb(x: float) -> str:
    return f"{x / 1e6:,.0f} MB"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the value below which q of the samples fall."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def note(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def table(rows: list[Row]) -> str:
    head = ("Measure", "Value", "Baseline (same run)", "Ratio", "Target", "Met")
    cells = [head] + [(r.measure, r.value, r.baseline, r.ratio, r.target, r.met) for r in rows]
    lines = ["| " + " | ".join(c) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("---" for _ in head) + "|")
    return "\n".join(lines)


def where() -> str:
    import torch
    import transformers

    try:
        import streamlit

        st_version = streamlit.__version__
    except ImportError:
        st_version = "?"
    load = os.getloadavg()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return (
        f"Ran {time.strftime('%Y-%m-%d %H:%M %Z')} on {socket.gethostname()} "
        f"({platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, {mem:.0f} GB RAM, "
        f"Python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, streamlit {st_version}); load average at the start "
        f"{load[0]:.1f}."
    )


def write_results(rows: list[Row], header: str, notes: list[str], minutes: float) -> str:
    body = [
        "# Benchmark results",
        "",
        header,
        f"The whole run took {minutes:.1f} min. Regenerate with `make bench`.",
        "",
        table(rows),
        "",
    ]
    if notes:
        body += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(body)
    RESULTS.write_text(text)
    return text


def page_first_render(page_file: str) -> tuple[float, float]:
    """AppTest render of a page through app.py: the first time in this process (its caches
    cold, the models already loaded) and a second time (every cache warm), in seconds."""
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(2):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
        t0 = time.perf_counter()
        at.switch_page(page_file).run()
        times.append(time.perf_counter() - t0)
        if at.exception:
            raise RuntimeError(str(at.exception[0].message)[:200])
    return times[0], times[1]
