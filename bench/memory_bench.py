"""Memory and fairness: the trace cache under its byte budget, Play's share of a core, and the
heavy-work queue (issue 13, items 1 and 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from bench.common import ROOT, Row, mb, note

PROMPTS = 30

# Thirty distinct prompts longer than the trace cap, through the trace cache, in a fresh
# process; RSS before (model loaded, one trace done) and after. `policy` picks the cache:
# "budget" is the app's (components.memo), "entries" the old one (24 traces, whatever size).
_RUN = """
import json, sys
from collections import OrderedDict
policy = sys.argv[1]

def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024

from components import memo
from components import models as cm
from core.models import EMBEDDED_ID, load_embedded
from core.trace import run_trace
lm = load_embedded()
old = OrderedDict()

def trace(text):
    if policy == 'budget':
        return cm._trace(EMBEDDED_ID, text, 256)
    t = old.get(text) or run_trace(lm, text, 256)
    old[text] = t
    old.move_to_end(text)
    while len(old) > 24:
        old.popitem(last=False)
    return t

cm.load_model = lambda _id: lm  # no Streamlit status boxes in a bare process
trace('warm-up ' * 300)
before = rss()
for i in range(%d):
    trace(f'Prompt {i}: ' + ' '.join(f'word{i * 97 + j}' for j in range(300)))
after = rss()
held = memo.STORE.total if policy == 'budget' else sum(memo.nbytes(t) for t in old.values())
print('RESULT ' + json.dumps({'before': before, 'after': after, 'held': held,
                              'budget': memo.STORE.budget}))
""" % PROMPTS


def _trace_run(policy: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _RUN, policy], cwd=ROOT, capture_output=True,
                         text=True, timeout=1800, env={**os.environ})
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"trace run failed: {out.stderr[-800:]}")


def trace_memory() -> list[Row]:
    note(f"memory: {PROMPTS} distinct 256-token prompts through the trace cache, twice "
         "(byte budget, then the old 24-entry cache), each in a fresh process")
    new, old = _trace_run("budget"), _trace_run("entries")
    return [
        Row(f"Server RSS after {PROMPTS} distinct long prompts (trace cache under a byte "
            f"budget of {mb(new['budget'])})", mb(new["after"]),
            f"old 24-entry cache: {mb(old['after'])}", f"{old['after'] / new['after']:.2f}x less",
            "under 1.5 GB", "yes" if new["after"] < 1.5e9 else "NO"),
        Row("Server RSS before those prompts (model loaded, one trace)", mb(new["before"]),
            f"old cache: {mb(old['before'])}"),
        Row(f"Bytes the trace cache holds after {PROMPTS} prompts", mb(new["held"]),
            f"old cache: {mb(old['held'])}", f"{old['held'] / max(new['held'], 1):.1f}x less",
            f"budget {mb(new['budget'])}", "yes" if new["held"] <= new["budget"] else "NO"),
    ]


def _play_share(paced: bool, seconds: float = 6.0) -> tuple[float, int]:
    """CPU share of a core used by page 02's Play loop (training, the pictures and the loss
    chart's spec, as the fragment builds them), with the run_every timer simulated."""
    from components import playground as cp
    from core import playground as pgc

    pg = pgc.Playground(pgc.PlaygroundConfig(dataset="spiral", hidden=(8, 8, 8)))
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    redraws = 0
    while time.perf_counter() - start_wall < seconds and pg.epoch < pgc.EPOCH_CAP:
        began = time.perf_counter()
        pg.train_epochs(3, budget_s=cp.TRAIN_BUDGET_S)
        snap = pg.snapshot()
        cp.montage([cp.neuron_image(a) for a in snap.neurons[0]])
        cp.boundary_image(snap.output, pg.data)
        cp.loss_chart(snap.train_loss, snap.test_loss, pgc.EPOCH_CAP).to_dict()
        work = time.perf_counter() - began
        redraws += 1
        rest = cp.pause_after(work) if paced else 0.0
        time.sleep(max(rest, cp.REDRAW_S - work))  # the timer fires again after REDRAW_S
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    return cpu / wall, redraws


def play_share() -> list[Row]:
    from core.playground import toy_threads

    note("Play: page 02's redraw loop for 6 s, paced and unpaced")
    with toy_threads():
        paced, n_paced = _play_share(True)
        unpaced, n_unpaced = _play_share(False)
    return [Row("Page 02 Play: share of a core one learner uses while playing (paced)",
                f"{paced:.0%} ({n_paced} redraws in 6 s)",
                f"unpaced: {unpaced:.0%} ({n_unpaced} redraws)", f"{unpaced / paced:.1f}x less",
                "at most 35% + overhead")]


def _wait_while_a_job_loops(lock_factory, steps: int = 40, step_s: float = 0.02) -> float:
    """Longest wait of a page's single forward pass for the heavy-work lock while another
    learner's job takes it per step (step_s of work, then straight back)."""
    lock = lock_factory()
    done = threading.Event()

    def job() -> None:
        for _ in range(steps):
            with lock:
                t = time.perf_counter()
                while time.perf_counter() - t < step_s:  # busy, like a forward pass
                    pass
        done.set()

    worker = threading.Thread(target=job)
    worker.start()
    waits = []
    time.sleep(step_s * 2)
    while not done.is_set():
        t = time.perf_counter()
        with lock:
            waits.append(time.perf_counter() - t)
        time.sleep(step_s)
    worker.join()
    return max(waits) if waits else 0.0


def queue_fairness() -> list[Row]:
    from core.models import FairSlots

    note("heavy-work queue: a page's forward pass against a job looping 40 steps of 20 ms")
    fair = _wait_while_a_job_loops(lambda: FairSlots(1))
    unfair = _wait_while_a_job_loops(lambda: threading.BoundedSemaphore(1))
    return [Row("Longest wait for the heavy-work lock while another job loops (FIFO queue)",
                f"{fair * 1000:.0f} ms", f"threading.Semaphore: {unfair * 1000:.0f} ms",
                f"{unfair / max(fair, 1e-9):.1f}x shorter", "about one step (20 ms)")]


def rows() -> list[Row]:
    return [*queue_fairness(), *play_share(), *trace_memory()]


if __name__ == "__main__":
    from bench.common import table

    print(table(rows()))
