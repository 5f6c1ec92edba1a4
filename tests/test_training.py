"""Page 04 (Training): hand-derived gradients against autograd, the loss surface, and the
optimiser paths doing what the page's text says they do."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from apptest_util import open_page
from hypothesis import given, settings
from hypothesis import strategies as st

from core import training as optim


def test_direction_reversals_counts_turns_back():
    zigzag = np.array([[0, 0], [1, 2], [2, 0], [3, 2], [4, 0]], dtype=float)  # across a valley
    straight = np.array([[0, 0], [1, 1], [2, 2], [2, 3], [2, 3]], dtype=float)  # a bend, a stop
    assert optim.direction_reversals(zigzag) == 3
    assert optim.direction_reversals(straight) == 0
    assert optim.direction_reversals(np.array([[0, 0], [2, 0], [1, 0]], dtype=float)) == 1


def test_sgd_zigzags_only_near_its_limit_and_adam_starts_at_one_learning_rate_per_step():
    limit = optim.divergence_threshold()
    near = max(lr for lr in (0.1, 0.15, 0.2, 0.3) if lr < limit)
    assert optim.direction_reversals(optim.optimizer_path("SGD", near).points) >= 10
    adam = optim.optimizer_path("Adam", 0.05, steps=1).points
    np.testing.assert_allclose(np.abs(adam[1] - adam[0]), 0.05, rtol=1e-3)


def _turns(at) -> dict[str, int]:
    out = {}
    for c in at.caption:
        m = re.match(r"(\w+): loss .* turned back .* (\d+) times", c.value)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def test_training_page_text_matches_the_paths_at_its_defaults():
    at = open_page("pages/04_training.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "zig-zags across it while momentum and Adam keep their direction" not in text
    turns = _turns(at)
    assert set(turns) == set(optim.OPTIMIZERS)
    # default (small) learning rate: SGD slides down and along without turning back, momentum
    # overshoots and swings round, Adam keeps its direction
    assert turns["SGD"] == 0 and turns["Adam"] == 0 and turns["momentum"] > 0
    lr = at.select_slider(key="training.lr").value
    assert lr < optim.divergence_threshold()
    sgd = optim.optimizer_path("SGD", lr, optim.N_POINTS, at.slider(key="training.steps").value)
    mom = optim.optimizer_path(
        "momentum", lr, optim.N_POINTS, at.slider(key="training.steps").value
    )
    assert mom.losses[-1] < sgd.losses[-1]  # momentum gets down the floor sooner
    near = max(
        x
        for x in at.select_slider(key="training.lr").options
        if float(x) < optim.divergence_threshold()
    )
    at.select_slider(key="training.lr").set_value(float(near)).run()
    assert _turns(at)["SGD"] >= 10  # close to its limit, SGD zig-zags from wall to wall


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


def test_training_page_gradients_and_divergence():
    at = open_page("pages/04_training.py")
    assert not at.exception
    dot = at.get("graphviz_chart")[0].proto.spec
    at.slider(key="training.w1").set_value(-1.0).run()
    assert at.get("graphviz_chart")[0].proto.spec != dot
    assert not any("diverged" in w.value for w in at.warning)
    at.select_slider(key="training.lr").set_value(0.3).run()
    assert 0.3 > optim.divergence_threshold()
    warnings = [w.value for w in at.warning if "diverged" in w.value]
    assert any(w.startswith("SGD diverged") for w in warnings)
    at.select_slider(key="training.lr").set_value(0.1).run()
    assert not any("diverged" in w.value for w in at.warning)
