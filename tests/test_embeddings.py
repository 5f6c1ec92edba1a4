"""Page 07 (Embeddings): neighbours, analogies, PCA and t-SNE against brute force and
scikit-learn, sentence embeddings, words in context; the UMAP helper process
(core/runtime/worker.py): its coordinates against umap-learn called directly, its idle exit and
restart, a killed helper, the neighbour-share figure against a brute-force count, the vocabulary
search; and the page through AppTest.

numba's compiled code is kept in the app's cache folder (`numba_cache_dir`), so only the first
run after an install compiles (about a minute); later runs take seconds."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from apptest_util import all_chart_data, chart_specs, open_page

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


def _default_group_vectors(lm) -> np.ndarray:
    table = E.embedding_matrix(lm.model).astype(np.float64)
    words = [w for _, ws in E.parse_groups(E.DEFAULT_GROUPS) for w in ws]
    return np.stack([E.word_vector(table, E.word_ids(lm.tokenizer, w)) for w in words])


def test_nearest_neighbours_equal_brute_force_cosine(lm):
    table = E.embedding_matrix(lm.model)
    unit = E.unit_rows(table)
    for word in ("king", "Paris", "running"):
        ids = E.word_ids(lm.tokenizer, word)
        vec = E.word_vector(table, ids)
        ours = E.nearest_neighbours(unit, vec, 8, exclude=ids)
        cos = np.array(
            [
                row @ vec / (np.linalg.norm(row) * np.linalg.norm(vec) + 1e-30)
                for row in table.astype(np.float64)
            ]
        )
        cos[list(ids)] = -np.inf
        ref = np.argsort(-cos, kind="stable")[:8]
        assert [n.token_id for n in ours] == ref.tolist()
        np.testing.assert_allclose([n.cosine for n in ours], cos[ref], atol=1e-5)
        # the page's path: the raw table and its row lengths, no normalised copy
        raw = E.nearest_neighbours(table, vec, 8, exclude=ids, norms=np.linalg.norm(table, axis=1))
        assert [n.token_id for n in raw] == ref.tolist()
        np.testing.assert_allclose([n.cosine for n in raw], cos[ref], atol=1e-5)


def test_analogy_vector_and_pca_against_references(lm):
    from sklearn.decomposition import PCA

    table = E.embedding_matrix(lm.model)
    a, b, c = (E.word_ids(lm.tokenizer, w) for w in ("man", "king", "woman"))
    np.testing.assert_allclose(
        E.analogy_vector(table, a, b, c),
        table[list(b)].mean(0) - table[list(a)].mean(0) + table[list(c)].mean(0),
        atol=1e-6,
    )
    x = table[:200].astype(np.float64)
    ours = E.pca_2d(x)
    ref = PCA(n_components=2, svd_solver="full").fit(x)
    np.testing.assert_allclose(np.abs(ours.xy), np.abs(ref.transform(x)), atol=1e-6)
    np.testing.assert_allclose(ours.explained, ref.explained_variance_ratio_, atol=1e-9)


def test_tsne_equals_scikit_learn(lm):
    """The same P as scikit-learn's (its perplexity search, cosine distances), the same cost and
    gradient, and a map about as good as scikit-learn's exact t-SNE from the same start."""
    from scipy.spatial.distance import squareform
    from sklearn.manifold import TSNE
    from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence

    x = _default_group_vectors(lm)
    u = E.unit_rows(x)
    d = np.clip(1.0 - u @ u.T, 0.0, 2.0)
    perplexity = E.tsne_perplexity(len(x))
    ours = E.joint_probabilities(d, perplexity)
    ref = squareform(_joint_probabilities(d.astype(np.float32), perplexity, 0))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-9)
    y = np.random.default_rng(0).normal(size=(len(x), 2))
    kl, grad = _kl_divergence(y.ravel(), squareform(ours, checks=False), 1, len(x), 2)
    assert E.kl_divergence(ours, y) == pytest.approx(kl, rel=1e-9)
    np.testing.assert_allclose(E.tsne_gradient(ours, y), grad.reshape(-1, 2), rtol=1e-7, atol=1e-12)
    # the whole descent: t-SNE's cost has many local minima and scikit-learn descends in
    # float32, so the maps differ; ours must reach about as low a cost from the same start
    start = E.pca_2d(x).xy
    start = start / np.std(start[:, 0]) * 1e-4
    sk = TSNE(
        2,
        perplexity=perplexity,
        metric="cosine",
        method="exact",
        init=start.astype(np.float32),
        learning_rate="auto",
        max_iter=1000,
    ).fit(x)
    assert E.kl_divergence(ours, E.tsne_2d(x).xy) < 1.3 * sk.kl_divergence_


def test_neighbours_kept_equals_brute_force_and_tsne_keeps_more_than_pca(lm):
    """The page's claim at its defaults: t-SNE keeps more of each word's nearest words."""
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    x = _default_group_vectors(lm)
    maps = {"pca": E.pca_2d(x).xy, "tsne": E.tsne_2d(x).xy}
    k = 5
    high = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)[1][:, 1:]
    for xy in maps.values():
        low = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)[1][:, 1:]
        ref = np.mean([len(set(a) & set(b)) / k for a, b in zip(high, low, strict=True)])
        assert E.neighbours_kept(x, xy, k) == pytest.approx(ref, abs=1 / len(x) / k + 1e-9)
    assert E.neighbours_kept(x, maps["tsne"], k) > E.neighbours_kept(x, maps["pca"], k)
    trust = {m: trustworthiness(x, xy, n_neighbors=k, metric="cosine") for m, xy in maps.items()}
    assert trust["tsne"] > trust["pca"]


def test_parse_groups_caps_and_cleans():
    text = "\n".join(f"g{i}: " + ", ".join(f"w{i}_{j}" for j in range(40)) for i in range(20))
    groups = E.parse_groups(text + "\n<script>x</script>: 😀, 汉字, שלום, ,,")
    assert len(groups) == E.MAX_GROUPS
    assert all(len(ws) == E.MAX_WORDS_PER_GROUP for _, ws in groups)
    assert E.parse_groups("   \n\n") == []
    assert E.parse_groups("just, words") == [("group 1", ["just", "words"])]


def test_sentence_embeddings_batched_equal_one_by_one(encoder):
    sentences = [
        "The cat sat on the mat.",
        "Stock prices fell sharply today, again and again.",
        "短い文",
    ]
    batch = E.sentence_embeddings(encoder, sentences)
    single = np.concatenate([E.sentence_embeddings(encoder, [s]) for s in sentences])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)
    sim = E.cosine_matrix(batch)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)


def test_word_in_context_static_rows_are_equal_and_contextual_differ(lm):
    sentences = [
        "We sat on the river bank.",
        "She went to the bank to get cash.",
        "No such word here.",
    ]
    wic = E.word_in_context(lm, "bank", sentences)
    assert wic.sentences == tuple(sentences[:2]) and wic.missing == (sentences[2],)
    np.testing.assert_array_equal(wic.static[0], wic.static[1])
    # Llama adds no position vector: hidden state 0 is the embedding row itself
    np.testing.assert_allclose(wic.contextual[:, 0], wic.static, atol=1e-6)
    deep = E.cosine_matrix(wic.contextual[:, 6])[0, 1]
    assert deep < 0.999


def test_embeddings_neighbours_sentences_and_bad_words(lm):
    from core.embeddings import embedding_matrix, nearest_neighbours, unit_rows, word_ids

    at = open_page("pages/07_embeddings.py")
    assert not at.exception, at.exception
    # PCA at once; t-SNE (numpy) and UMAP (umap-learn, in the helper process) from one button;
    # the figures in the titles and the caption are the computed ones
    from core.embeddings import (
        import_umap,
        neighbours_kept,
        parse_groups,
        pca_2d,
        tsne_2d,
        umap_neighbours,
        word_vector,
    )
    from core.runtime.worker import numba_cache_dir

    vecs = np.stack(
        [
            word_vector(embedding_matrix(lm.model), word_ids(lm.tokenizer, w))
            for _, ws in parse_groups(at.text_area(key="embeddings.groups").value)
            for w in ws
        ]
    )
    titles = " ".join(str(spec) for spec in chart_specs(at))
    assert f"'{neighbours_kept(vecs, pca_2d(vecs).xy, 5):.0%} of neighbours kept']" in titles
    assert "t-SNE" not in titles  # nothing long runs before the button
    draw = next(b for b in at.button if str(b.label).startswith("Draw t-SNE and UMAP"))
    draw.click().run(timeout=600)
    assert not at.exception, at.exception
    import os

    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    perplexity = at.slider(key="embeddings.map.perplexity").value
    nn = umap_neighbours(len(vecs), at.slider(key="embeddings.map.n_neighbors").value)
    umap_xy = (
        import_umap()
        .UMAP(n_neighbors=nn, min_dist=0.1, metric="cosine", random_state=42)
        .fit_transform(vecs.astype(np.float32))
    )
    kept = {
        "pca": neighbours_kept(vecs, pca_2d(vecs).xy, 5),
        "tsne": neighbours_kept(vecs, tsne_2d(vecs, perplexity=perplexity).xy, 5),
        "umap": neighbours_kept(vecs, umap_xy, 5),
    }
    titles = " ".join(str(spec) for spec in chart_specs(at))
    assert f"['t-SNE', '{kept['tsne']:.0%} of neighbours kept']" in titles
    assert f"['UMAP (umap-learn)', '{kept['umap']:.0%} of neighbours kept']" in titles
    assert kept["tsne"] > kept["pca"] and kept["umap"] > kept["pca"]
    assert any(
        f"PCA {kept['pca']:.0%}, t-SNE {kept['tsne']:.0%}, UMAP {kept['umap']:.0%}" in c.value
        for c in at.caption
    )
    pca = all_chart_data(at, "x", "y", "word", "label_side")[0]
    hidden = int((pca["label_side"] == 0).sum())
    if hidden:
        assert any(f"up to {hidden} of {len(pca)} are hidden" in c.value for c in at.caption)
    # every neighbour bar keeps its name: the axis never thins labels
    bars = next(s for s in chart_specs(at) if "Closest of all" in str(s))
    assert bars["encoding"]["y"]["axis"]["labelOverlap"] is False
    at.text_input(key="embeddings.word").set_value("Paris").run()
    assert not at.exception
    nb = all_chart_data(at, "token", "id", "cosine")[0]
    table = embedding_matrix(lm.model)
    ids = word_ids(lm.tokenizer, "Paris")
    cos = unit_rows(table.astype(np.float64)) @ (
        table[list(ids)].mean(0) / np.linalg.norm(table[list(ids)].mean(0))
    )
    cos[list(ids)] = -np.inf
    assert nb["id"].tolist() == np.argsort(-cos)[:10].tolist()
    ref = nearest_neighbours(unit_rows(table), table[list(ids)].mean(0), 10, exclude=ids)
    assert nb["id"].tolist() == [n.token_id for n in ref]

    at.text_area(key="embeddings.sentences").set_value("A dog barks.\nA puppy yaps.\nTaxes rose.")
    at.run()
    sims = [df for df in all_chart_data(at, "row", "col", "value") if len(df) == 9]
    assert sims, "a 3 x 3 similarity matrix"
    m = sims[0].pivot(index="row", columns="col", values="value").to_numpy()
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)

    at.text_input(key="embeddings.word").set_value("   ").run()
    at.text_input(key="embeddings.ctx_word").set_value("<b>zz</b>").run()
    assert not at.exception, at.exception
    assert any("Empty word" in m.value for m in at.info)
    assert any("Need at least two sentences" in m.value for m in at.info)


def test_embeddings_vocabulary_search_finds_tokens_and_takes_bad_input(lm):
    from core.embeddings import embedding_matrix, unit_rows

    at = open_page("pages/07_embeddings.py")
    table = unit_rows(embedding_matrix(lm.model).astype(np.float64))
    at.text_input(key="embeddings.word").set_value("king").run()
    options = at.selectbox(key="embeddings.token").options
    assert len(options) > 3 and "'·king', token" in options[0]
    # a token found by the search (not the word as typed): its neighbours by brute force
    at.selectbox(key="embeddings.token").set_value(options[2]).run()
    token_id = int(options[2].rsplit("token ", 1)[1])
    assert "king" in lm.tokenizer.decode([token_id]).lower()
    nb = all_chart_data(at, "token", "id", "cosine")[0]
    cos = table @ table[token_id]
    cos[token_id] = -np.inf
    assert nb["id"].tolist() == np.argsort(-cos)[:10].tolist()
    for typed in ("", "🙂🙂", "x" * 20_000, "<script>alert(1)</script>", "$x$", "<|im_start|>",
                  "東京", "unbelievably"):  # fmt: skip
        at.text_input(key="embeddings.word").set_value(typed).run()
        assert not at.exception, (typed[:20], at.exception)
        first = at.selectbox(key="embeddings.token").options[0]
        if typed and len(lm.tokenizer(" " + typed[:40])["input_ids"]) > 1:
            assert first.startswith("as typed: mean of")
