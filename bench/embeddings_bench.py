"""Page 07: UMAP by umap-learn in its helper process (core/runtime/worker.py).

Same run: the first map after an install (a fresh, empty NUMBA_CACHE_DIR) against later ones
(numba's code on disk; helper alive or restarted) and against umap-learn's own caching only;
the server's memory before and after a map, in a process that loads the model like the server,
against importing umap-learn in that process; the helper's peak memory; 30 learners pressing
the button at once (threads on the shared result store, one helper): the same word list, then
30 different ones.

`python -m bench.embeddings_bench` prints the table; `--append` adds it to bench/results.md
as a section of its own.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time

import numpy as np

from bench.common import RESULTS, Row, mb, note, percentile, process_rss, run_child, table, where

FN = "core.embeddings:umap_layout"


def plain_umap_layout(x, n_neighbors=15, min_dist=0.1, dims=(2, 3), seed=42):
    """umap-learn imported as it comes (only the functions it marks `cache=True` cached): the
    baseline for `core.embeddings.import_umap`'s caching of every compiled function."""
    import umap

    return {
        f"d{d}": umap.UMAP(
            n_neighbors=n_neighbors, min_dist=min_dist, n_components=d, metric="cosine",
            random_state=seed, n_jobs=1,
        ).fit_transform(np.asarray(x, np.float32))
        for d in dims
    }  # fmt: skip


def word_vectors() -> np.ndarray:
    """The page's default word groups (40 words) as SmolLM2 input vectors: (40, 576)."""
    from core import embeddings as E
    from core.runtime.models import load_embedded

    lm = load_embedded()
    table = E.embedding_matrix(lm.model)
    words = [w for _, ws in E.parse_groups(E.DEFAULT_GROUPS) for w in ws]
    return np.stack([E.word_vector(table, E.word_ids(lm.tokenizer, w)) for w in words])


def _timed(worker, x, fn: str = FN, **kw) -> tuple[float, float]:
    t0 = time.perf_counter()
    worker.call(fn, {"x": x}, n_neighbors=kw.get("n_neighbors", 15), min_dist=0.1, dims=[2, 3])
    return time.perf_counter() - t0, float(worker.last_header.get("cpu_s", float("nan")))


def start_up_rows(x: np.ndarray) -> list[Row]:
    from core import embeddings as E
    from core.runtime.worker import Worker, numba_cache_dir

    t0 = time.perf_counter()
    E.tsne_2d(x, perplexity=10)
    tsne_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cold:
        w = Worker(idle_s=600, env={"NUMBA_CACHE_DIR": cold})
        first, first_cpu = _timed(w, x)
        peak = w.last_peak_mb
        alive, alive_cpu = _timed(w, x, n_neighbors=10)
        w.stop()
        restart, restart_cpu = _timed(w, x)
        w.stop()
    plain = Worker(idle_s=600, env={"NUMBA_CACHE_DIR": str(numba_cache_dir())})
    _timed(plain, x, fn="bench.embeddings_bench:plain_umap_layout")  # umap's own cache warm
    plain.stop()
    plain_s, plain_cpu = _timed(plain, x, fn="bench.embeddings_bench:plain_umap_layout")
    plain.stop()
    note(f"cold {first:.1f} s ({first_cpu:.1f} CPU-s), restart {restart:.1f} s")
    base = f"t-SNE (numpy, in the server), same 40 words: {tsne_s:.2f} s"
    return [
        Row("p07 first UMAP map after install (empty numba cache; helper start, 2-D + 3-D, 40 words)",
            f"{first:.1f} s ({first_cpu:.1f} CPU-s in the helper)", base, f"{first / tsne_s:.0f}x"),
        Row("p07 later UMAP map, helper alive", f"{alive:.2f} s", base, f"{alive / tsne_s:.1f}x"),
        Row("p07 later UMAP map, helper restarted (numba code on disk)",
            f"{restart:.1f} s ({restart_cpu:.1f} CPU-s)",
            f"umap-learn's own caching only, restarted: {plain_s:.1f} s ({plain_cpu:.1f} CPU-s)",
            f"{restart_cpu / plain_cpu:.2f}x the CPU"),
        Row("p07 helper's peak memory (VmHWM), first map", f"{peak:,.0f} MB",
            "Streamlit Cloud: 2.7 GB for server and helper", "", "server + helper < 2.7 GB"),
    ]  # fmt: skip


def rss_child() -> None:
    """In a fresh process: load the model like the server, then one map through the helper,
    then the same map with umap-learn imported here (the old way). Prints RESULT json."""
    import json

    from core import embeddings as E
    from core.runtime.worker import Worker, numba_cache_dir

    x = word_vectors()
    E.pca_2d(x), E.tsne_2d(x)
    before = process_rss()
    w = Worker(idle_s=600, env={"NUMBA_CACHE_DIR": str(numba_cache_dir())})
    for nn in (15, 10, 5):
        w.call(FN, {"x": x}, n_neighbors=nn, min_dist=0.1, dims=[2, 3])
    after = process_rss()
    w.stop()
    E.umap_layout(x)  # in this process, as page 07 once did
    in_process = process_rss()
    print("RESULT " + json.dumps({"before": before, "after": after, "in_process": in_process}))


def rss_rows() -> list[Row]:
    got = run_child(["-m", "bench.embeddings_bench", "--rss-child"], "RESULT ", "RSS child")
    grew = got["after"] - got["before"]
    return [
        Row("p07 server RSS after 3 UMAP maps through the helper (model loaded like the server)",
            f"{mb(got['after'])} ({grew / 1e6:+.0f} MB)", f"before the maps: {mb(got['before'])}",
            "", "unchanged within 20 MB", "yes" if abs(grew) < 20e6 else "NO"),
        Row("p07 the same maps with umap-learn imported in the server (the old way)",
            f"{mb(got['in_process'])}", f"through the helper: {mb(got['after'])}",
            f"+{(got['in_process'] - got['after']) / 1e6:.0f} MB"),
    ]  # fmt: skip


def shared(store, key, work):
    """`components.jobs.run_job`'s shared path without its buttons: a result any learner
    computed before; else run it, unless another learner is running it: then wait for theirs."""
    from components.jobs import Finished

    done = store.get(key)
    if done is not None:
        return done.value
    lock = store.key_lock(key)
    if lock.acquire(blocking=False):
        try:
            t0 = time.perf_counter()
            value = work()
            store.put(key, Finished(value, time.perf_counter() - t0, time.time()))
            return value
        finally:
            lock.release()
    with lock:
        pass
    return store.get(key).value


def _wave(store, worker, x, keys) -> list[float]:
    waits = [0.0] * len(keys)
    go = threading.Barrier(len(keys))

    def learner(i: int, key) -> None:
        go.wait()
        t0 = time.perf_counter()
        shared(store, key, lambda: worker.call(FN, {"x": x}, n_neighbors=key[1], min_dist=0.1,
                                               dims=[2, 3]))  # fmt: skip
        waits[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=learner, args=(i, k)) for i, k in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return waits


def class_rows(x: np.ndarray) -> list[Row]:
    from components.jobs import JobStore
    from core.runtime.worker import Worker, numba_cache_dir

    worker = Worker(idle_s=600, env={"NUMBA_CACHE_DIR": str(numba_cache_dir())})
    worker.call(FN, {"x": x}, n_neighbors=4, min_dist=0.1, dims=[2, 3])  # helper up
    one, _ = _timed(worker, x, n_neighbors=16)
    same = _wave(JobStore(), worker, x, [("maps", 15)] * 30)
    distinct = _wave(JobStore(), worker, x, [("maps", 2 + i) for i in range(30)])
    worker.stop()
    base = f"one learner alone, helper alive: {one:.2f} s"
    return [
        Row("p07 30 learners press 'Draw t-SNE and UMAP' at once, same words: p50, p95 wait",
            f"{percentile(same, 0.5):.2f} s, {percentile(same, 0.95):.2f} s", base,
            f"p95 {percentile(same, 0.95) / one:.1f}x", "1 map computed, 29 wait for it"),
        Row("p07 30 learners at once, 30 different settings, one helper in order: p50, p95 wait",
            f"{percentile(distinct, 0.5):.2f} s, {percentile(distinct, 0.95):.2f} s", base,
            f"p95 {percentile(distinct, 0.95) / one:.1f}x"),
    ]  # fmt: skip


def rows() -> list[Row]:
    x = word_vectors()
    return start_up_rows(x) + rss_rows() + class_rows(x)


def main(argv: list[str]) -> None:
    if "--rss-child" in argv:
        rss_child()
        return
    t0 = time.time()
    header = where()
    out = rows()
    text = table(out)
    print(text)
    if "--append" in argv:
        section = (
            f"\n## Page 07: UMAP in a helper process (bench/embeddings_bench.py)\n\n{header} "
            f"Took {(time.time() - t0) / 60:.1f} min.\n\n{text}\n"
        )
        with open(RESULTS, "a") as f:
            f.write(section)


if __name__ == "__main__":
    main(sys.argv)
