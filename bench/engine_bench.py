"""Generation served to N learners at once: the batched engine against one-at-a-time.

Measured on the server side (threads calling `core.decoding.generate_stream`, as Streamlit's
session threads do), so the figures are the server's own and not the browsers'. The baseline,
in the same run, is the same requests served strictly one after the other (the engine
disabled), which is what the app did before the engine.
"""

from __future__ import annotations

import os
import threading
import time

from bench.common import Row, median, note, percentile, process_rss, run_child
from core.runtime import generation

NEW_TOKENS = 32
PROMPT = "Write one sentence about the sea, number {i}:"


PEAK = [0]  # highest RSS of this process (the server's model and engine) while serving


def _serve(lm, n: int, batched: bool) -> tuple[float, list[float], list[float]]:
    """(wall seconds, tokens/s per learner, seconds to the first token per learner)."""

    os.environ["LLM_EXPLORER_ENGINE"] = "1" if batched else "0"
    rates, firsts = [0.0] * n, [0.0] * n
    gate = threading.Semaphore(n if batched else 1)  # one at a time when not batched
    start = threading.Event()

    def learner(i: int) -> None:
        ids = lm.tokenizer(PROMPT.format(i=i))["input_ids"]
        s = generation.DecodingSettings(max_new_tokens=NEW_TOKENS, stop_at_eos=False, seed=i)
        start.wait()
        t0 = time.perf_counter()
        with gate:
            count = 0
            for _step in generation.generate_stream(lm, ids, s):
                if count == 0:
                    firsts[i] = time.perf_counter() - t0
                count += 1
        rates[i] = count / (time.perf_counter() - t0)

    threads = [threading.Thread(target=learner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            PEAK[0] = max(PEAK[0], process_rss())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    done.set()
    sampler.join()
    os.environ.pop("LLM_EXPLORER_ENGINE", None)
    return time.perf_counter() - t0, rates, firsts


def rows() -> list[Row]:
    """Measured in a fresh process, so its RSS is the model and the engine's alone (`make
    bench` runs the other parts in its own process first)."""
    rows = run_child(["-m", "bench.engine_bench", "--json"], "ROWS ", "engine bench")
    return [Row(**r) for r in rows]


def _measure() -> list[Row]:
    from core.runtime.models import load_embedded

    # Load in a thread that then ends, as a Streamlit session's script thread does: a thread
    # that ran torch keeps an OpenMP team alive, and with more OpenMP threads than cores GNU
    # OpenMP stops spinning between parallel regions, which made every batched step ~40 %
    # slower here (measured: 101 ms against 140-200 ms for 30 rows).
    box: list = []
    loader = threading.Thread(target=lambda: box.append(load_embedded()))
    loader.start()
    loader.join()
    lm = box[0]
    out: list[Row] = []
    _serve(lm, 1, True)  # warm up
    idle = process_rss()
    for n in (1, 8, 30):
        note(f"engine: {n} learners, batched and one at a time")
        wall_b, rates_b, first_b = _serve(lm, n, True)
        wall_s, rates_s, first_s = _serve(lm, n, False)
        total_b, total_s = n * NEW_TOKENS / wall_b, n * NEW_TOKENS / wall_s
        target = "each >= 5 tok/s, total >= 5x" if n == 30 else ""
        met = ""
        if n == 30:
            ok = min(rates_b) >= 5 and total_b >= 5 * total_s
            met = (
                "yes" if ok else f"NO (slowest {min(rates_b):.1f} tok/s, {total_b / total_s:.1f}x)"
            )
        out.append(
            Row(
                f"{n} learners generating {NEW_TOKENS} tokens at once: tokens/s per learner "
                "(median, slowest)",
                f"{median(rates_b):.1f}, {min(rates_b):.1f} tok/s (total {total_b:.0f} tok/s)",
                f"one at a time: {median(rates_s):.1f}, {min(rates_s):.1f} tok/s "
                f"(total {total_s:.0f} tok/s)",
                f"{total_b / total_s:.2f}x total",
                target,
                met,
            )
        )
        out.append(
            Row(
                f"{n} learners: time to first token p50 / p95",
                f"{percentile(first_b, 0.5):.2f} / {percentile(first_b, 0.95):.2f} s",
                f"one at a time: {percentile(first_s, 0.5):.2f} / {percentile(first_s, 0.95):.2f} s",
                f"{percentile(first_s, 0.95) / max(percentile(first_b, 0.95), 1e-9):.1f}x faster p95",
            )
        )
    out.append(
        Row(
            "RSS of the process serving them (model + engine), peak during the 1/8/30 runs",
            f"{PEAK[0] / 1e6:,.0f} MB",
            f"model loaded, idle: {idle / 1e6:,.0f} MB",
            f"+{(PEAK[0] - idle) / 1e6:,.0f} MB for 30 KV caches and threads",
        )
    )
    return out


if __name__ == "__main__":
    import dataclasses
    import json
    import sys

    from bench.common import table

    measured = _measure()
    if "--json" in sys.argv:
        print("ROWS " + json.dumps([dataclasses.asdict(r) for r in measured]))
    else:
        print(table(measured))
