"""Page 02 (Layers): what its text says about XOR, the Playground and the similarity map."""

from __future__ import annotations

import math

import numpy as np
import torch
from apptest_util import open_page

from core import playground as pgc


def _xor(hidden: tuple[int, ...], seed: int) -> pgc.Playground:
    pg = pgc.Playground(pgc.PlaygroundConfig(dataset="xor", hidden=hidden, seed=seed))
    pg.train_epochs(200)
    return pg


def test_xor_without_hidden_layer_stays_at_coin_flip_loss_but_not_at_chance_accuracy():
    best_line = 0.0
    for seed in range(3):
        flat = _xor((), seed)
        assert abs(flat.test_loss[-1] - math.log(2)) < 0.02  # the loss of answering 50 %
        assert flat.accuracy("test") <= 0.75  # a line gets at most three quadrants right
        best_line = max(best_line, flat.accuracy("test"))
    assert best_line > 0.6  # above chance all the same: "cannot do better than chance" is false
    assert _xor((4,), 0).accuracy("test") > 0.9  # one hidden layer of four tanh neurons


def test_the_last_similarity_row_is_the_last_block_after_the_final_norm(lm):
    from core.trace import run_trace

    trace = run_trace(lm, "The quick brown fox jumps over the lazy dog.")
    captured = {}
    handle = lm.model.model.layers[-1].register_forward_hook(
        lambda m, i, o: captured.setdefault("out", (o[0] if isinstance(o, tuple) else o).detach())
    )
    try:
        with torch.inference_mode():
            lm.model(torch.tensor([trace.ids.tolist()]))
    finally:
        handle.remove()
    block_out = captured["out"][0]  # (T, d) the last block's output, before the final norm
    with torch.inference_mode():
        normed = lm.model.model.norm(block_out).numpy()
    np.testing.assert_allclose(trace.hidden_states[-1], normed, rtol=1e-4, atol=1e-3)
    assert not np.allclose(trace.hidden_states[-1], block_out.numpy(), atol=1.0)


def test_layers_page_says_what_is_true():
    at = open_page("pages/02_layers.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "cannot do better than chance" not in text and "exactly the loop" not in text
    assert f"ln 2 ≈ {math.log(2):.2f}" in text and "three of the four quadrants" in text
    assert "tanh output" in text and "squared error" in text
    assert "after the final norm" in text
    assert any("after the final norm" in c.value for c in at.caption)
