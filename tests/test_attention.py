"""Page 08 (Attention): one head recomputed step by step against the model's own attention
(SmolLM2 and a tiny GPT-2), causal rows, the encoder's bidirectional attention, and the page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from apptest_util import all_chart_data, open_page
from tiny_models import tiny_lm

from core import attention as A
from core.inspect.anatomy import geometry
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


def _heatmap(at):
    return all_chart_data(at, "query", "key", "weight")[0]


def _metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.fixture(scope="module")
def attention_page():
    at = open_page("pages/08_attention.py")
    assert not at.exception, at.exception
    return at


def _check_causal(df):
    assert (df["key"] <= df["query"]).all()
    np.testing.assert_allclose(df.groupby("query")["weight"].sum(), 1.0, atol=3e-3)


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


def test_encoder_attention_is_bidirectional_and_capped(encoder):
    enc = A.encoder_attention(encoder, "word " * 200, cap=20)
    assert len(enc.tokens) == 20 and enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.truncated_from > 20
    np.testing.assert_allclose(enc.attentions.sum(-1), 1.0, atol=1e-5)
    assert np.triu(enc.attentions, 1).sum() > 1.0


def test_attention_layer_and_head_pickers_redraw(attention_page):
    at = attention_page
    first = _heatmap(at)
    _check_causal(first)
    at.slider(key="attention.layer").set_value(5).run()
    assert not at.exception
    moved = _heatmap(at)
    _check_causal(moved)
    assert not np.allclose(first["weight"], moved["weight"])
    assert float(_metric(at, "max |ours")) < 1e-3  # the recomputation matches the model
    at.selectbox(key="attention.head").set_value(4).run()
    other = _heatmap(at)
    assert not np.allclose(other["weight"], moved["weight"])
    assert float(_metric(at, "max |ours")) < 1e-3
    assert _metric(at, "key/value head") == str(4 // 3)  # SmolLM2: 9 query, 3 kv heads
    steps = all_chart_data(at, "panel", "shade")  # one chart per stage, so each fits
    assert len(steps) == 6 and len({df["panel"].iloc[0] for df in steps}) == 6


def test_attention_encoder_view_is_bidirectional(attention_page):
    at = attention_page
    maps = all_chart_data(at, "query", "key", "weight")
    assert len(maps) == 2
    encoder = maps[1]
    assert (encoder["key"] > encoder["query"]).any()  # MiniLM sees the future
    at.selectbox(key="attention.enc_layer").set_value(3).run()
    assert not at.exception
    assert not np.allclose(
        all_chart_data(at, "query", "key", "weight")[1]["weight"], encoder["weight"]
    )


@pytest.mark.parametrize(
    "prompt, expect",
    [
        ("   ", "empty"),
        ("<script>alert(1)</script> $x$ 😀 汉字 שלום \u200b " * 400, "first 64"),
    ],
)
def test_attention_bad_prompts_are_handled(attention_page, prompt, expect):
    at = attention_page
    at.session_state["shared.prompt"] = prompt
    at.run()
    assert not at.exception, at.exception
    assert any(expect in m.value for m in at.info)
    _check_causal(_heatmap(at))
    at.session_state["shared.prompt"] = "The quick brown fox jumps over the lazy dog."
    at.run()
