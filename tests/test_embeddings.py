"""The UMAP helper process (core/runtime/worker.py) and the maps of page 07 (core/embeddings.py):
the helper's coordinates against umap-learn called directly, its idle exit and restart, a killed
helper, the neighbour-share figure against a brute-force count, the vocabulary search.

numba's compiled code is kept in the app's cache folder (`numba_cache_dir`), so only the first
run after an install compiles (about a minute); later runs take seconds."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from core import embeddings as E
from core.runtime.worker import Worker, WorkerDied, WorkerError, numba_cache_dir, writable_dir


@pytest.fixture(scope="module")
def numba_env():
    return {"NUMBA_CACHE_DIR": str(numba_cache_dir())}


@pytest.fixture(scope="module")
def points():
    # three loose clusters in 64 dimensions: a map with something to keep
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64)) * 3
    return np.concatenate([c + rng.normal(size=(10, 64)) for c in centres])  # (30, 64)


def test_helper_coordinates_equal_umap_learn_called_directly(points, numba_env):
    worker = Worker(idle_s=30, env=numba_env)
    try:
        got = worker.call(
            "core.embeddings:umap_layout", {"x": points}, n_neighbors=8, min_dist=0.2, dims=[2, 3]
        )
    finally:
        worker.stop()
    os.environ.setdefault("NUMBA_CACHE_DIR", numba_env["NUMBA_CACHE_DIR"])
    umap = E.import_umap()  # umap-learn itself, numba told to cache what it compiles
    for dim in (2, 3):
        direct = umap.UMAP(
            n_neighbors=8, min_dist=0.2, n_components=dim, metric="cosine", random_state=E.UMAP_SEED
        ).fit_transform(points.astype(np.float32))
        np.testing.assert_array_equal(got[f"d{dim}"], direct)
    assert worker.last_peak_mb > 100  # the helper, not this process, imported umap-learn


def test_helper_exits_when_idle_and_starts_again(numba_env):
    worker = Worker(idle_s=1.0, env=numba_env)
    x = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(worker.call("core.runtime.worker:echo", {"x": x})["x"], x)
    first = worker.proc
    assert first is not None and first.poll() is None
    deadline = time.monotonic() + 30
    while first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.returncode == 0  # it left by itself, after its idle time
    assert np.array_equal(worker.call("core.runtime.worker:echo", {"x": x + 1})["x"], x + 1)
    assert worker.starts == 2 and worker.proc is not first
    worker.stop()


def test_killed_helper_gives_a_clear_message_and_the_next_request_works(numba_env):
    worker = Worker(idle_s=30, env=numba_env)
    x = np.ones((2, 2))
    worker.call("core.runtime.worker:echo", {"x": x})
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerDied, match=r"stopped before it answered \(exit code -9\).*again"):
        worker.call("core.runtime.worker:echo", {"x": x})
    assert np.array_equal(worker.call("core.runtime.worker:echo", {"x": x})["x"], x)
    # an error inside the function is reported and the helper keeps serving
    with pytest.raises(WorkerError, match="UMAP needs at least 5 points"):
        worker.call("core.embeddings:umap_layout", {"x": x})
    assert np.array_equal(worker.call("core.runtime.worker:echo", {"x": -x})["x"], -x)
    worker.stop()


def test_a_read_only_cache_folder_falls_back_to_a_temporary_one(tmp_path):
    blocked = tmp_path / "a-file"  # a file where the folder should go: mkdir fails, even as root
    blocked.write_text("")
    got = writable_dir(blocked / "numba", "numba")
    assert got != blocked / "numba" and os.access(got, os.W_OK)
    assert writable_dir(tmp_path / "ok", "numba") == tmp_path / "ok"


def test_numba_cache_follows_llm_explorer_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EXPLORER_CACHE", str(tmp_path))
    assert numba_cache_dir() == tmp_path / "numba"


def test_neighbours_kept_equals_a_brute_force_count(points):
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(len(points), 2))
    for k in (1, 3, 5):
        share = []
        for i in range(len(points)):
            cos = [
                points[i] @ points[j] / np.linalg.norm(points[i]) / np.linalg.norm(points[j])
                for j in range(len(points))
            ]
            dist = [float(np.sum((xy[i] - xy[j]) ** 2)) for j in range(len(points))]
            high = sorted((j for j in range(len(points)) if j != i), key=lambda j: -cos[j])[:k]
            low = sorted((j for j in range(len(points)) if j != i), key=lambda j: dist[j])[:k]
            share.append(len(set(high) & set(low)) / k)
        assert E.neighbours_kept(points, xy, k) == pytest.approx(np.mean(share))


def test_projection_maps_report_what_they_used(points):
    calls = []

    def fake_umap(x, n_neighbors, min_dist):
        calls.append((len(x), n_neighbors, min_dist))
        return {"d2": x[:, :2]}

    maps = E.projection_maps(points[:6], fake_umap, n_neighbors=50, perplexity=30)
    assert calls == [(6, 5, 0.1)] and maps.perplexity == 5 and maps.n_neighbors == 5
    assert maps.k == 2  # half of the 5 others: with all 5, every map keeps 100 %
    assert maps.kept["umap"] == E.neighbours_kept(points[:6], points[:6, :2], 2)
    assert maps.kept["tsne"] == E.neighbours_kept(
        points[:6], E.tsne_2d(points[:6], perplexity=5).xy, 2
    )
    few = E.projection_maps(points[:4], fake_umap)
    assert few.umap is None and "umap" not in few.kept and len(calls) == 1


def test_find_tokens_ranks_exact_then_prefix_then_substring():
    texts = ["the", " king", "king", " kingdom", "ing", " viking", "King", "🙂", " k"]
    assert E.find_tokens(texts, "king") == [2, 6, 1, 3, 5]  # case-blind, shorter first
    assert E.find_tokens(texts, "  ") == [] and E.find_tokens(texts, "") == []
    assert E.find_tokens(texts, "🙂") == [7]
    assert E.find_tokens(texts, "x" * 20_000) == []
    assert E.find_tokens(texts, "k", limit=2) == [8, 2]
