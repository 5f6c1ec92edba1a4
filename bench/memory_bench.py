"""Memory and fairness: the trace cache under its byte budget, Play's share of a core, and the
heavy-work queue."""

from __future__ import annotations

import sys
import threading
import time

from bench.common import Row, mb, note, run_child

PROMPTS = 30

# Thirty distinct prompts longer than the trace cap, through the app's trace cache, in a fresh
# process: RSS before (model loaded, one trace done) and after, the bytes the cache holds, and
# the bytes the old cache (the last 24 traces, whatever their size) would hold of the same.
_RUN = """
import json, sys
cap = int(sys.argv[1])

def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024

from components import memo
from components import models as cm
from core.runtime.models import EMBEDDED_ID, load_embedded
lm = load_embedded()
cm.load_model = lambda _id: lm  # no Streamlit status boxes in a bare process
cm._trace(EMBEDDED_ID, 'warm-up ' * 300, cap)
before = rss()
sizes = []
for i in range(N_PROMPTS):
    t = cm._trace(EMBEDDED_ID, f'Prompt {i}: ' + ' '.join(f'word{i * 97 + j}' for j in range(300)),
                  cap)
    sizes.append(memo.nbytes(t))
    del t
after = rss()
print('RESULT ' + json.dumps({'before': before, 'after': after, 'held': memo.STORE.total,
                              'old_held': sum(sizes[-24:]), 'budget': memo.STORE.budget,
                              'trace': sizes[-1]}))
""".replace("N_PROMPTS", str(PROMPTS))


def _trace_run(cap: int) -> dict:
    return run_child(["-c", _RUN, str(cap)], "RESULT ", "trace run")


def trace_memory(cap: int = 256) -> list[Row]:
    note(
        f"memory: {PROMPTS} distinct {cap}-token prompts through the trace cache in a fresh process"
    )
    r = _trace_run(cap)
    old_rss = r["before"] + r["old_held"]  # what the old cache would have added on top
    return [
        Row(
            f"Server RSS after {PROMPTS} distinct {cap}-token prompts (trace cache under a byte "
            f"budget of {mb(r['budget'])})",
            mb(r["after"]),
            f"before them: {mb(r['before'])}; old 24-entry cache: about {mb(old_rss)}",
            f"{old_rss / r['after']:.2f}x less",
            "under 1.5 GB",
            "yes" if r["after"] < 1.5e9 else "NO",
        ),
        Row(
            f"Bytes the trace cache holds after {PROMPTS} prompts ({mb(r['trace'])} a trace)",
            mb(r["held"]),
            f"old 24-entry cache: {mb(r['old_held'])}",
            f"{r['old_held'] / max(r['held'], 1):.1f}x less",
            f"budget {mb(r['budget'])}",
            "yes" if r["held"] <= r["budget"] else "NO",
        ),
    ]


def _play_share(paced: bool, seconds: float = 6.0) -> tuple[float, float, int]:
    """CPU share of a core used by page 02's Play loop (training, the pictures and the loss
    chart's data, as the fragment builds them), with the run_every timer simulated. The
    browser's view of the same loop (Streamlit's own work included) is
    bench/playground_bench.py."""
    from components import playground as cp
    from core import layers as pgc

    pg = pgc.Playground(pgc.PlaygroundConfig(dataset="spiral", hidden=(8, 8, 8)))
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    redraws, busy = 0, 0.0
    while time.perf_counter() - start_wall < seconds and pg.epoch < pgc.EPOCH_CAP:
        began, cpu_began = time.perf_counter(), time.thread_time()
        pg.train_epochs(3, budget_s=cp.TRAIN_BUDGET_S)
        snap = pg.snapshot()
        cp.montage([cp.neuron_image(a) for a in snap.neurons[0]])
        cp.boundary_image(snap.output, pg.data)
        cp.loss_frame(snap.train_loss, snap.test_loss)
        cp.loss_spec(pgc.EPOCH_CAP)
        work = time.thread_time() - cpu_began
        busy += work
        redraws += 1
        wall = time.perf_counter() - began
        cpu = work + cp.streamlit_cpu(len(snap.neurons) + 2)  # the page's pictures
        rest = cp.pause_after(cpu, wall) if paced else 0.0
        time.sleep(max(rest, cp.REDRAW_S - wall))  # the timer fires again after REDRAW_S
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    return cpu / wall, busy / wall, redraws


def play_share() -> list[Row]:
    from core.layers import toy_threads

    note("Play: page 02's redraw loop for 6 s, paced and unpaced")
    with toy_threads():
        paced, paced_busy, n_paced = _play_share(True)
        unpaced, unpaced_busy, n_unpaced = _play_share(False)
    return [
        Row(
            "Page 02 Play: CPU one learner's redraw loop uses (share of a core, paced)",
            f"{paced:.0%} ({n_paced} redraws in 6 s)",
            f"unpaced: {unpaced:.0%} ({n_unpaced} redraws)",
            f"{unpaced / paced:.1f}x less",
        ),
        Row(
            "Page 02 Play: share of wall time its script thread computes (CPU time)",
            f"{paced_busy:.0%}",
            f"unpaced: {unpaced_busy:.0%}",
            f"{unpaced_busy / paced_busy:.1f}x less",
            "at most 35%",
            "yes" if paced_busy <= 0.36 else "NO",
        ),
    ]


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
    from core.runtime.models import FairSlots

    note("heavy-work queue: a page's forward pass against a job looping 40 steps of 20 ms")
    fair = _wait_while_a_job_loops(lambda: FairSlots(1))
    unfair = _wait_while_a_job_loops(lambda: threading.BoundedSemaphore(1))
    return [
        Row(
            "Longest wait for the heavy-work lock while another job loops (FIFO queue)",
            f"{fair * 1000:.0f} ms",
            f"threading.Semaphore: {unfair * 1000:.0f} ms",
            f"{unfair / max(fair, 1e-9):.1f}x shorter",
            "about one step (20 ms)",
        )
    ]


def rows() -> list[Row]:
    return [*queue_fairness(), *play_share(), *trace_memory()]


if __name__ == "__main__":
    from bench.common import table

    parts = sys.argv[1:] or ["queue", "play", "memory"]
    runs = {"queue": queue_fairness, "play": play_share, "memory": trace_memory}
    for part in parts:
        print(table(runs[part]()), flush=True)
