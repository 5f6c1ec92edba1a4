"""Page 01 (The Neuron): the toy neuron's plane, a real MLP neuron (SmolLM2, a tiny GPT-2)
recomputed from its layer input, layer similarity against brute-force CKA, activation
histograms, and the page (with hostile prompts on pages 01-03) through AppTest."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_util import chart_data, open_page

from core import activations
from core import neuron as neurons
from core.inspect.anatomy import require


def _cka_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    t = a.shape[0]
    h = np.eye(t) - np.ones((t, t)) / t
    ka, kb = a @ a.T, b @ b.T
    hsic = lambda k, m: np.trace(k @ h @ m @ h)  # noqa: E731
    return hsic(ka, kb) / math.sqrt(hsic(ka, ka) * hsic(kb, kb))


def _html(at) -> str:
    return " ".join(el.proto.body for el in at.get("html"))


def test_toy_neuron_output_and_decision_line():
    plane = activations.neuron_plane(1.5, -0.5, 0.4, "tanh", extent=3.0, res=21)
    g1, g2 = np.meshgrid(plane.grid, plane.grid)
    np.testing.assert_allclose(plane.output, np.tanh(1.5 * g1 - 0.5 * g2 + 0.4))
    assert len(plane.line) > 0
    np.testing.assert_allclose(1.5 * plane.line[:, 0] - 0.5 * plane.line[:, 1] + 0.4, 0, atol=1e-9)
    z, a = activations.neuron(1.0, 2.0, 1.5, -0.5, 0.4, "sigmoid")
    assert z == pytest.approx(0.9) and a == pytest.approx(1 / (1 + math.exp(-0.9)))
    assert len(activations.neuron_plane(0.0, 0.0, 1.0, "relu").line) == 0


def test_real_neuron_recomputed_from_layer_input_equals_captured(lm):
    ids = lm.tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
    anatomy = require(lm.model, "mlp")
    n_layers = anatomy.n_layers
    assert n_layers == lm.config.num_hidden_layers
    assert anatomy.mlp_width == lm.config.intermediate_size
    for layer in (0, n_layers - 1):
        cap = neurons.capture_mlp(lm.model, ids, layer)
        assert cap.neurons.shape == (len(ids), lm.config.intermediate_size)
        np.testing.assert_allclose(
            neurons.recompute_neurons(lm.model, layer, cap.mlp_input),
            cap.neurons,
            rtol=1e-4,
            atol=1e-5,
        )
        # SwiGLU: the neuron is silu(gate) * up, with gate the captured pre-activation
        parts = anatomy.mlp(layer)
        with torch.no_grad():
            up = parts.gate_mul(torch.from_numpy(cap.mlp_input)).numpy()
        silu = cap.preact / (1 + np.exp(-cap.preact))
        np.testing.assert_allclose(silu * up, cap.neurons, rtol=1e-3, atol=1e-4)
    for m in lm.model.modules():  # transformers' own output-capturing hooks may be there
        for hook in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]:
            assert "output_capturing_hook" in getattr(hook, "__qualname__", ""), hook


def test_gpt2_mlp_neurons_are_gelu_of_c_fc(tiny_gpt2):
    model = tiny_gpt2.model
    anatomy = require(model, "mlp")
    assert anatomy.n_layers == 2 and anatomy.mlp_width == 128
    cap = neurons.capture_mlp(model, [5, 17, 42, 9], 1)
    with torch.no_grad():
        ref = F.gelu(
            model.transformer.h[1].mlp.c_fc(torch.from_numpy(cap.mlp_input)), approximate="tanh"
        )
    np.testing.assert_allclose(cap.neurons, ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        neurons.recompute_neurons(model, 1, cap.mlp_input), cap.neurons, rtol=1e-5, atol=1e-6
    )


def test_layer_similarity_matches_brute_force_cka_and_cosine():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(4, 7, 5))
    hidden[2] = hidden[1] * 3 + 1  # scaling and shifting keeps linear CKA at 1
    sim = neurons.layer_similarity(hidden, "cka")
    for i in range(4):
        for j in range(4):
            assert sim[i, j] == pytest.approx(_cka_brute_force(hidden[i], hidden[j]), abs=1e-9)
    assert sim[1, 2] == pytest.approx(1.0)
    cos = neurons.layer_similarity(hidden, "cosine")
    ref = np.mean(
        [
            hidden[0, t]
            @ hidden[3, t]
            / np.linalg.norm(hidden[0, t])
            / np.linalg.norm(hidden[3, t])
            for t in range(7)
        ]
    )
    assert cos[0, 3] == pytest.approx(ref)


def test_histogram_counts_everything_and_top_tokens_are_the_largest():
    v = np.random.default_rng(1).normal(size=(30, 40))
    h = neurons.histogram(v, bins=20)
    assert h.counts.sum() == h.total == 1200
    assert h.fraction_negative == pytest.approx((v < 0).mean())
    vals = np.array([0.1, 3.0, -2.0, 1.5])
    top = neurons.top_activating(("a", "b", "c", "d"), vals, k=2)
    assert [t.token for t in top] == ["b", "d"] and top[0].context == "a[b]"


def test_neuron_page_formula_plane_and_real_neuron():
    at = open_page("pages/01_neuron.py")
    assert not at.exception
    at.slider(key="neuron.w1").set_value(2.0).run()
    at.slider(key="neuron.w2").set_value(0.0).run()
    at.slider(key="neuron.b").set_value(-1.0).run()
    # z = 2·x1 + 0·x2 - 1 at the default input x1 = 1: z = 1
    assert "= 1.000" in at.latex[0].value
    line = chart_data(at, "x1", "x2", exact=True)  # the neuron's line, drawn on its plane
    np.testing.assert_allclose(line["x1"], 0.5, atol=1e-9)  # the line 2·x1 - 1 = 0
    caption = next(c.value for c in at.caption if "match the model" in c.value)
    assert float(re.search(r"within ([0-9.e+-]+)\.", caption).group(1)) < 1e-4
    # it opens on a neuron with a pattern: its top-activating tokens on the sample text are
    # mostly one token (neuron 0's are scattered), by the page's own table
    top = next(d.value for d in at.dataframe if "activation" in d.value.columns)
    assert at.number_input(key="neuron.index").value != 0
    assert top["token"].value_counts().iloc[0] >= len(top) // 2, top["token"].tolist()
    assert not at.warning  # no "default value also set via Session State" warning
    strip_before = _html(at)
    at.number_input(key="neuron.index").set_value(7).run()
    assert not at.exception and _html(at) != strip_before
    layer = at.slider(key="neuron.layer")
    layer.set_value(layer.max).run()
    assert not at.exception


def test_model_pages_survive_hostile_prompts():
    hostile = ("<script>alert(1)</script> $x$ **b** 🙂 漢字 مرحبا \u200b " * 800)[:20_000]
    at = open_page("pages/01_neuron.py")
    for prompt in ("", "   ", hostile):
        at.sidebar.text_area(key="sidebar.prompt").set_value(prompt).run()
        assert not at.exception, prompt[:20]
        assert "<script>" not in _html(at)
    assert any("first 256" in i.value for i in at.info)
    for page in ("pages/02_layers.py", "pages/03_activations.py"):
        at.switch_page(page).run()
        assert not at.exception, page
