"""Page 07 (Embeddings): neighbours, analogies, PCA and t-SNE against brute force and
scikit-learn, sentence embeddings, words in context, and the page through AppTest."""

from __future__ import annotations

import numpy as np
import pytest
from apptest_util import all_chart_data, chart_specs, open_page

from core import embeddings as E


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
    # PCA and t-SNE at once; the figures in the titles and the caption are the computed ones
    from core.embeddings import neighbours_kept, parse_groups, pca_2d, tsne_2d, word_vector

    vecs = np.stack(
        [
            word_vector(embedding_matrix(lm.model), word_ids(lm.tokenizer, w))
            for _, ws in parse_groups(at.text_area(key="embeddings.groups").value)
            for w in ws
        ]
    )
    kept = {
        m: neighbours_kept(vecs, f(vecs).xy, 5) for m, f in (("pca", pca_2d), ("tsne", tsne_2d))
    }
    titles = " ".join(str(spec) for spec in chart_specs(at))
    assert f"['t-SNE', '{kept['tsne']:.0%} of neighbours kept']" in titles
    assert f"'{kept['pca']:.0%} of neighbours kept']" in titles
    assert kept["tsne"] > kept["pca"]
    assert any("t-SNE keeps more of the neighbourhoods" in c.value for c in at.caption)
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
