"""Core of pages 01-05 against references: torch.nn.functional, autograd, brute force, the LM."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from core import activations
from core import layers as pgc
from core import neuron as neurons
from core import overfitting as overfit
from core import training as optim
from core.inspect.anatomy import require

X = torch.linspace(-6, 6, 241, dtype=torch.float64)
X_NO_KINK = X[X.abs() > 1e-6]  # ReLU-like functions have no derivative at 0

REFERENCE = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, activations.LEAKY_SLOPE),
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


@pytest.mark.parametrize("name", activations.NAMES)
def test_activation_values_equal_torch_functional(name):
    ours = activations.ACTIVATIONS[name].f(X)
    torch.testing.assert_close(ours, REFERENCE[name](X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", activations.NAMES)
def test_hand_derived_derivatives_equal_autograd(name):
    x = X_NO_KINK.clone().requires_grad_(True)
    REFERENCE[name](x).sum().backward()
    torch.testing.assert_close(
        activations.ACTIVATIONS[name].df(X_NO_KINK), x.grad, rtol=1e-7, atol=1e-10
    )


def test_toy_neuron_output_and_decision_line():
    plane = activations.neuron_plane(1.5, -0.5, 0.4, "tanh", extent=3.0, res=21)
    g1, g2 = np.meshgrid(plane.grid, plane.grid)
    np.testing.assert_allclose(plane.output, np.tanh(1.5 * g1 - 0.5 * g2 + 0.4))
    assert len(plane.line) > 0
    np.testing.assert_allclose(1.5 * plane.line[:, 0] - 0.5 * plane.line[:, 1] + 0.4, 0, atol=1e-9)
    z, a = activations.neuron(1.0, 2.0, 1.5, -0.5, 0.4, "sigmoid")
    assert z == pytest.approx(0.9) and a == pytest.approx(1 / (1 + math.exp(-0.9)))
    assert len(activations.neuron_plane(0.0, 0.0, 1.0, "relu").line) == 0


# ---- the playground ------------------------------------------------------------------------


def test_bce_equals_torch_and_features_follow_their_formulas():
    z, y = torch.randn(50) * 5, (torch.rand(50) > 0.5).float()
    torch.testing.assert_close(pgc.bce_with_logits(z, y), F.binary_cross_entropy_with_logits(z, y))
    pts = np.array([[1.0, 2.0], [-0.5, 3.0]], dtype=np.float32)
    m = pgc.feature_matrix(pts, pgc.FEATURES).numpy()
    x, yy = pts[:, 0], pts[:, 1]
    np.testing.assert_allclose(
        m, np.stack([x, yy, x * x, yy * yy, x * yy, np.sin(x), np.sin(yy)], 1), rtol=1e-6
    )


@pytest.mark.parametrize("name", pgc.DATASETS)
def test_datasets_are_balanced_split_and_noise_flips_labels(name):
    d = pgc.make_dataset(name, noise=0, train_ratio=30, seed=3)
    assert len(d.y_train) == 150 and len(d.y_test) == 350
    labels = np.concatenate([d.y_train, d.y_test])
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert 0.3 < labels.mean() < 0.7
    assert np.abs(np.concatenate([d.x_train, d.x_test])).max() <= pgc.DOMAIN


def test_l1_l2_penalties_and_one_step_equal_a_manual_sgd_update():
    c = pgc.PlaygroundConfig(hidden=(3,), regularization="L2", reg_rate=0.1, learning_rate=0.5)
    pg = pgc.Playground(c)
    w = [p.detach().clone() for p in pg.model.parameters()]
    weights = [p for n, p in pg.model.named_parameters() if n.endswith("weight")]
    assert float(pgc.weight_penalty(pg.model, "L1").detach()) == pytest.approx(
        sum(float(p.detach().abs().sum()) for p in weights)
    )
    xb, yb = pg._xtr[:10], pg._ytr[:10]
    ref = [p.detach().clone().requires_grad_(True) for p in pg.model.parameters()]
    h = torch.tanh(xb @ ref[0].T + ref[1])
    loss = F.binary_cross_entropy_with_logits((h @ ref[2].T + ref[3])[:, 0], yb)
    (loss + 0.1 * ((ref[0] ** 2).sum() + (ref[2] ** 2).sum()) / 2).backward()
    pg.step(xb, yb)
    for before, r, after in zip(w, ref, pg.model.parameters(), strict=True):
        torch.testing.assert_close(after.detach(), before - 0.5 * r.grad)


def test_snapshot_heatmaps_are_the_hidden_neurons_over_the_plane():
    pg = pgc.Playground(pgc.PlaygroundConfig(hidden=(4, 2)))
    pg.train_epochs(2)
    snap = pg.snapshot(res=9)
    assert snap.epoch == 2 and len(snap.train_loss) == 3
    assert [n.shape for n in snap.neurons] == [(4, 9, 9), (2, 9, 9)]
    x, y = snap.grid[7], snap.grid[2]  # row = y index, column = x index
    with torch.no_grad():
        first = torch.tanh(pg.model[0](torch.tensor([[x, y]])))[0]
        out = torch.sigmoid(pg.model(torch.tensor([[x, y]])))[0, 0]
    np.testing.assert_allclose(snap.neurons[0][:, 2, 7], first.numpy(), rtol=1e-5, atol=1e-6)
    assert snap.output[2, 7] == pytest.approx(float(out), abs=1e-6)


def test_retune_keeps_weights_and_structure_change_is_detected():
    c = pgc.PlaygroundConfig()
    pg = pgc.Playground(c)
    before = pg.model[0].weight.detach().clone()
    pg.retune(replace(c, learning_rate=0.3))
    assert torch.equal(pg.model[0].weight, before)
    assert pg._opt.param_groups[0]["lr"] == 0.3
    assert replace(c, hidden=(3,)).structure() != c.structure()


def test_training_with_hand_features_solves_the_circle_without_hidden_layers():
    c = pgc.PlaygroundConfig(dataset="circle", features=("x²", "y²"), hidden=(), learning_rate=0.1)
    linear = pgc.train_run(replace(c, features=("x", "y")), 20)
    squares = pgc.train_run(c, 20)
    assert squares.accuracy() > 0.95 > 0.75 > linear.accuracy()


# ---- the real model's neurons ----------------------------------------------------------------


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


def _cka_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    t = a.shape[0]
    h = np.eye(t) - np.ones((t, t)) / t
    ka, kb = a @ a.T, b @ b.T
    hsic = lambda k, m: np.trace(k @ h @ m @ h)  # noqa: E731
    return hsic(ka, kb) / math.sqrt(hsic(ka, ka) * hsic(kb, kb))


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


# ---- backpropagation and optimisers ------------------------------------------------------------

small = st.floats(-3, 3, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(small, small, small, small, small, small)
def test_hand_derived_gradients_equal_autograd(x1, x2, w1, w2, b, y):
    nodes = optim.expression_graph(x1, x2, w1, w2, b, y)
    hand = optim.hand_gradients(x1, x2, w1, w2, b, y)
    for n in nodes:
        assert n.grad == pytest.approx(hand[n.name], rel=1e-9, abs=1e-12), n.name
    loss = next(n for n in nodes if n.name == "L")
    assert loss.value == pytest.approx((math.tanh(x1 * w1 + x2 * w2 + b) - y) ** 2)


def test_loss_surface_is_the_mse_at_each_grid_point():
    ws, bs, loss = optim.loss_surface(res=11)
    x, y = optim.regression_data()
    assert loss[4, 7] == pytest.approx(
        float(optim.mse(torch.tensor(ws[7]), torch.tensor(bs[4]), x, y))
    )


def test_too_large_learning_rate_diverges_and_a_small_one_converges():
    limit = optim.divergence_threshold()
    low = optim.optimizer_path("SGD", 0.9 * limit, steps=200)
    high = optim.optimizer_path("SGD", 1.2 * limit, steps=200)
    assert not low.diverged and low.losses[-1] < 0.1 * low.losses[0]
    assert high.diverged and high.losses[-1] > optim.DIVERGED_LOSS
    for name in optim.OPTIMIZERS:
        path = optim.optimizer_path(name, 0.05, steps=100)
        assert path.losses[-1] < path.losses[0] and path.points.shape == (101, 2)


# ---- overfitting ---------------------------------------------------------------------------


def test_high_capacity_on_few_points_overfits_and_weight_decay_narrows_the_gap():
    gaps = {0.0: [], 0.003: []}
    for seed in (0, 1):
        for decay in gaps:
            r = overfit.fit(overfit.FitConfig(n_train=15, width=128, weight_decay=decay, seed=seed))
            gaps[decay].append(r.gap)
            if decay == 0.0:
                assert r.final_val > 3 * r.final_train
    assert np.mean(gaps[0.003]) < 0.8 * np.mean(gaps[0.0])


def test_early_stopping_keeps_the_best_validation_step():
    r = overfit.fit(overfit.FitConfig(early_stopping=True, patience=50))
    assert r.stopped_at is not None
    assert r.final_val == pytest.approx(r.val_loss.min())
    assert r.steps[-1] - r.steps[r.stopped_at] >= 50 or r.steps[-1] == 1000


def test_playground_overfits_few_noisy_points_and_l2_keeps_test_loss_down():
    c = pgc.PlaygroundConfig(
        dataset="gauss",
        noise=40,
        train_ratio=10,
        hidden=(8, 8),
        features=pgc.FEATURES,
        learning_rate=0.1,
        batch_size=5,
    )
    free = pgc.train_run(c, 300)
    assert free.train_loss[-1] < 0.05 and free.test_loss[-1] > 2 * min(free.test_loss)
    l2 = pgc.train_run(replace(c, regularization="L2", reg_rate=0.03), 300)
    assert l2.test_loss[-1] - l2.train_loss[-1] < 0.5 * (free.test_loss[-1] - free.train_loss[-1])


def test_training_time_budget_stops_after_the_epoch_that_exhausts_it():
    pg = pgc.Playground(pgc.PlaygroundConfig())
    assert pg.train_epochs(3) == 3 and pg.epoch == 3
    assert pg.train_epochs(5, budget_s=0.0) == 1 and pg.epoch == 4
