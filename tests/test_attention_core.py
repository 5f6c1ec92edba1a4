"""Reference checks for core/attention.py, core/inspect/interventions.py and core/embeddings.py.

References: the model's own attention (fp32), a weight-zeroed copy of the model for head
switch-off, brute-force cosine rankings, scikit-learn's PCA, one-by-one encoding.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from tiny_models import tiny_lm

from core import attention as A
from core import embeddings as E
from core import multi_head as MH
from core.inspect import interventions as I
from core.inspect.anatomy import geometry, require
from core.inspect.trace import run_trace

TEXT = "The cat sat on the mat. The cat sat on the mat because it was warm."


@pytest.fixture(scope="module")
def tiny(lm, tiny_gpt2):
    return {
        "gpt2": tiny_gpt2,
        "llama": tiny_lm("llama", lm.tokenizer),
        "qwen3": tiny_lm("qwen3", lm.tokenizer),
    }


def _fp32_reference(model, ids):
    with torch.inference_mode():
        out = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    return [a[0].numpy() for a in out.attentions], [h[0].numpy() for h in out.hidden_states]


def test_trace_attention_rows_sum_to_one_and_are_causal(lm, tiny):
    for model in (lm, tiny["gpt2"]):
        att = run_trace(model, TEXT, A.ATTENTION_CAP).attentions.astype(np.float32)
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=2e-3)  # float16 storage
        assert np.all(np.triu(att, k=1) == 0)


@pytest.mark.parametrize("which", ["embedded", "gpt2", "llama", "qwen3"])
def test_recomputed_head_equals_model_attention(lm, tiny, which):
    model = lm if which == "embedded" else tiny[which]
    ids = model.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    attn, hidden = _fp32_reference(model.model, ids)
    g = geometry(model.config)
    layers = range(g.n_layers) if g.n_layers <= 4 else (0, g.n_layers // 2, g.n_layers - 1)
    for layer in layers:
        for head in range(g.n_heads):
            steps = A.recompute_head(model.model, hidden[layer], layer, head)
            np.testing.assert_allclose(steps.weights, attn[layer][head], atol=2e-5)
            assert np.all(np.isneginf(steps.masked[np.triu_indices(len(ids), 1)]))
            assert steps.kv_head == g.kv_head(head)
            # the softmax step is a plain softmax of the masked scores
            ref = torch.softmax(torch.from_numpy(steps.masked), -1).numpy()
            np.testing.assert_allclose(steps.weights, ref, atol=1e-6)


def _brute_patterns(att):
    L, H, T, _ = att.shape
    prev, sink, self_ = (np.zeros((L, H)) for _ in range(3))
    for layer in range(L):
        for h in range(H):
            rows = range(2, T)
            prev[layer, h] = np.mean([att[layer, h, t, t - 1] for t in rows])
            sink[layer, h] = np.mean([att[layer, h, t, 0] for t in rows])
            self_[layer, h] = np.mean([att[layer, h, t, t] for t in rows])
    return prev, sink, self_


def test_pattern_scores_match_loops_and_recognise_pure_patterns():
    rng = np.random.default_rng(1)
    t = 7
    raw = np.tril(rng.random((2, 3, t, t)))
    att = raw / raw.sum(-1, keepdims=True)
    for ours, ref in zip(MH.pattern_scores(att), _brute_patterns(att), strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-6)
    prev = np.eye(t, k=-1)[None, None].copy()
    prev[..., 0, 0] = 1
    p, s, me = MH.pattern_scores(prev)
    assert p[0, 0] == 1 and s[0, 0] == 0 and me[0, 0] == 0
    profile = MH.head_profile(prev, np.zeros((1, 1)))
    assert profile.label(0, 0) == "previous-token"


def test_induction_is_measured_on_a_repeated_sequence(lm):
    ids = MH.repeated_random_ids(lm.config.vocab_size, 10, seed=3)
    assert len(set(ids[:10].tolist())) == 10 and np.array_equal(ids[:10], ids[10:])
    scores = MH.induction_scores(lm.model)
    assert scores.shape == (lm.config.num_hidden_layers, lm.config.num_attention_heads)
    # a trained model has induction heads; a head attending uniformly would score ~1/T
    assert scores.max() > 0.5
    assert np.median(scores) < 0.2


def _zeroed_copy(model, layer, heads):
    """Reference for switching heads off: the output projection's columns for them set to 0."""
    ref = copy.deepcopy(model)
    anatomy = require(ref, "heads")
    g = anatomy.geometry
    proj = anatomy.output_projection(layer)
    with torch.no_grad():
        for h in heads:
            cols = slice(h * g.head_dim, (h + 1) * g.head_dim)
            if anatomy.attention_layout == "llama":
                proj.weight[:, cols] = 0  # nn.Linear: (out, in)
            else:
                proj.weight[cols, :] = 0  # Conv1D: (in, out)
    return ref


@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_switch_off_equals_zeroed_weights_and_leaves_model_unchanged(tiny, which):
    model = tiny[which].model
    ids = tiny[which].tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    before = I.last_logits(model, ids)
    off = I.last_logits(model, ids, {1: [0]})
    with torch.inference_mode():
        ref = _zeroed_copy(model, 1, [0])(torch.tensor([ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(off, ref, atol=1e-5)
    assert np.abs(off - before).max() > 1e-4
    np.testing.assert_array_equal(I.last_logits(model, ids), before)
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_switch_off_on_the_real_model_changes_output_and_is_undone(lm):
    ids = lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    before = I.last_logits(lm.model, ids)
    change = I.next_token_change(before, I.last_logits(lm.model, ids, {0: range(9)}))
    assert change.kl_bits > 1e-3
    # base and ablated are the two full softmaxes, read at the union of both top-k lists
    ref = torch.softmax(torch.from_numpy(before).double(), -1).numpy()
    np.testing.assert_allclose(change.base, ref[list(change.token_ids)], rtol=1e-6)
    assert list(change.base) == sorted(change.base, reverse=True)
    np.testing.assert_array_equal(I.last_logits(lm.model, ids), before)
    with pytest.raises(RuntimeError), I.heads_switched_off(lm.model, {2: [1]}):
        raise RuntimeError("boom")
    assert all(not m._forward_pre_hooks for m in lm.model.modules())


def test_two_sessions_do_not_see_each_others_switch_off(tiny):
    model = tiny["llama"].model
    ids = tiny["llama"].tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.inference_mode():
        plain = model(x).logits[0, -1].numpy()
    refs = {h: I.last_logits(model, ids, {0: [h]}) for h in (1, 2)}
    installed, release = threading.Event(), threading.Event()
    seen: dict[str, np.ndarray] = {}

    def session_a():
        with I.heads_switched_off(model, {0: [1]}), torch.inference_mode():
            installed.set()
            release.wait(30)  # hold the hook while the other session runs
            seen["a"] = model(x).logits[0, -1].numpy()

    thread = threading.Thread(target=session_a)
    thread.start()
    assert installed.wait(30)
    with torch.inference_mode():  # an ordinary forward while A's hook sits on the model
        seen["plain"] = model(x).logits[0, -1].numpy()
    # B switches another head off while A's hook is still installed: each hook acts only in
    # its own thread, so neither waits for the other and neither sees the other's change
    other = threading.Thread(
        target=lambda: seen.setdefault("b", I.last_logits(model, ids, {0: [2]}))
    )
    other.start()
    other.join(30)
    assert "b" in seen and "a" not in seen  # B finished while A still holds its hook
    release.set()
    thread.join(30)
    np.testing.assert_array_equal(seen["plain"], plain)
    np.testing.assert_allclose(seen["a"], refs[1], atol=1e-6)
    np.testing.assert_allclose(seen["b"], refs[2], atol=1e-6)
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_encoder_attention_is_bidirectional_and_capped(encoder):
    enc = A.encoder_attention(encoder, "word " * 200, cap=20)
    assert len(enc.tokens) == 20 and enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.truncated_from > 20
    np.testing.assert_allclose(enc.attentions.sum(-1), 1.0, atol=1e-5)
    assert np.triu(enc.attentions, 1).sum() > 1.0


# ------------------------------------------------------------------------------ embeddings --


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


def _default_group_vectors(lm) -> np.ndarray:
    table = E.embedding_matrix(lm.model).astype(np.float64)
    words = [w for _, ws in E.parse_groups(E.DEFAULT_GROUPS) for w in ws]
    return np.stack([E.word_vector(table, E.word_ids(lm.tokenizer, w)) for w in words])


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
