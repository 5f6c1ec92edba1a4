"""Page 04 (Training): the optimiser paths do what the page's text says they do."""

from __future__ import annotations

import re

import numpy as np
from apptest_util import open_page

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
