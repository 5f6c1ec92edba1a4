"""Page 09 (Multi-head attention): head roles measured on one set of texts, over several seeds,
labelled by thresholds the page states; the key/value sharing read from the config."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from apptest_util import all_chart_data, open_page
from tiny_models import tiny_lm

from core import multi_head as MH
from core.inspect import interventions as I
from core.inspect.anatomy import require


def test_head_roles_batch_equals_each_seed_alone_on_the_same_texts(lm):
    half, seeds = 8, 3
    roles = MH.head_roles(lm.model, half=half, seeds=seeds)
    per_seed = []
    for s in range(seeds):  # reference: one forward pass per sequence
        ids = MH.repeated_random_ids(lm.config.vocab_size, half, s)
        with torch.inference_mode():
            out = lm.model(torch.as_tensor(ids)[None], output_attentions=True)
        att = torch.stack([a[0] for a in out.attentions]).float().numpy()  # (L, H, 2h, 2h)
        rows = np.arange(half + 1, 2 * half)
        per_seed.append((*MH.pattern_scores(att), att[..., rows, rows - half + 1].mean(-1)))
    prev, sink, self_, ind = (np.stack(x) for x in zip(*per_seed))  # each (S, L, H)
    for ours, ref in (
        (roles.previous, prev),
        (roles.sink, sink),
        (roles.self_, self_),
        (roles.induction, ind),
    ):
        np.testing.assert_allclose(ours, ref.mean(0), atol=2e-3)
    np.testing.assert_allclose(roles.induction_low, ind.min(0), atol=2e-3)
    np.testing.assert_allclose(roles.induction_high, ind.max(0), atol=2e-3)
    assert roles.seeds == seeds
    top = np.unravel_index(np.argmax(roles.induction), roles.induction.shape)
    assert roles.induction_high[top] - roles.induction_low[top] > 0.01  # seeds do disagree


def test_labels_follow_the_stated_thresholds_in_priority_order():
    t = MH.HEAD_LABEL_THRESHOLD
    z = np.zeros((1, 4), dtype=np.float32)
    profile = MH.HeadProfile(
        previous=np.array([[0.0, 0.0, t + 0.01, 0.1]], dtype=np.float32),
        sink=np.array([[0.6, 0.1, 0.5, 0.2]], dtype=np.float32),
        self_=z,
        induction=np.array([[t + 0.15, t + 0.16, t - 0.01, 0.1]], dtype=np.float32),
    )
    # heads 0 and 1 have near-equal induction scores: the same label, whatever else they do
    assert [profile.label(0, h) for h in range(4)] == [
        "induction",
        "induction",
        "previous-token",
        "mixed",
    ]
    assert MH.HeadProfile.PRIORITY[0] == "induction" and set(MH.HeadProfile.PRIORITY) == set(
        MH.HeadProfile.PATTERNS
    )


@pytest.fixture(scope="module")
def page():
    return open_page("pages/09_multi_head.py")


def test_multi_head_page_states_its_measurement_and_the_shared_key_values(page, lm):
    at = page
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    group = lm.config.num_attention_heads // lm.config.num_key_value_heads
    assert f"each group of {group} query heads reads the same keys and values" in text
    assert "own small W_Q, W_K and W_V" not in text
    assert f"on {MH.INDUCTION_SEEDS} random sequences" in text
    assert f"{MH.HEAD_LABEL_THRESHOLD:.0%}" in text and "not your prompt" in text
    table = next(d.value for d in at.dataframe if "induction lowest seed" in d.value.columns)
    assert (table["induction lowest seed"] <= table["induction"] + 1e-6).all()
    assert (table["induction"] <= table["induction highest seed"] + 1e-6).all()
    for head, row in table.iterrows():  # the shown role is the stated rule applied to the row
        expected = next(
            (p for p in MH.HeadProfile.PRIORITY if row[p] >= MH.HEAD_LABEL_THRESHOLD), "mixed"
        )
        assert row["role"] == expected, head


def test_page_opens_on_the_first_layer_with_a_previous_token_head(page):
    """Layer 0 is all 'mixed' on SmolLM2: the page opens where its own table names a head."""
    at = page
    layer = at.slider(key="multi_head.layer").value
    table = next(d.value for d in at.dataframe if "induction lowest seed" in d.value.columns)
    assert (table["previous-token"] >= MH.HEAD_LABEL_THRESHOLD).any()  # this layer shows one
    from components.multi_head import cached_profile

    prof = cached_profile(
        at.session_state["shared.model"]
        if "shared.model" in at.session_state
        else "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    before = prof.previous[:layer] >= MH.HEAD_LABEL_THRESHOLD
    assert not before.any()  # and it is the first such layer


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


TEXT = "The cat sat on the mat. The cat sat on the mat because it was warm."


@pytest.fixture(scope="module")
def tiny(lm, tiny_gpt2):
    return {
        "gpt2": tiny_gpt2,
        "llama": tiny_lm("llama", lm.tokenizer),
        "qwen3": tiny_lm("qwen3", lm.tokenizer),
    }


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


def _metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


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


def test_multi_head_layer_slider_and_switch_off():
    at = open_page("pages/09_multi_head.py")
    assert not at.exception, at.exception
    heads = pd.concat(all_chart_data(at, "head", "query", "key", "weight"))  # one chart a head
    assert heads["head"].nunique() == 9
    assert any("head 0:" in h for h in heads["head"].unique())
    at.slider(key="multi_head.layer").set_value(10).run()
    moved = pd.concat(all_chart_data(at, "head", "query", "key", "weight"))
    assert not np.allclose(moved["weight"], heads["weight"])
    assert not at.metric  # nothing switched off yet
    at.multiselect(key="multi_head.off").set_value([0, 1, 2]).run()
    assert not at.exception, at.exception
    kl = float(_metric(at, "KL").split()[0])
    assert kl > 0
    bars = all_chart_data(at, "token", "probability", "heads")[0]
    assert bars["heads"].nunique() == 2
    np.testing.assert_array_less(bars["probability"], 1.0 + 1e-9)
