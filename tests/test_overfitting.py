"""Page 05 (Overfitting): capacity, weight decay and early stopping as the page says, the noise
floor measured on the validation points shown, and the page through AppTest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from apptest_util import open_page

from core import overfitting as overfit


def test_noise_floor_is_the_truths_own_loss_on_these_validation_points():
    c = overfit.FitConfig(epochs=20)
    r = overfit.fit(c)
    xv, yv = overfit.samples(overfit.N_VALIDATION, c.noise, c.seed + 10_000)
    x, y = xv[:, 0].double().numpy(), yv[:, 0].double().numpy()
    reference = float(np.mean((np.sin(2 * math.pi * x) - y) ** 2))
    assert abs(r.noise_floor - reference) < 1e-5
    assert abs(r.noise_floor - c.noise**2) > 0.01  # 100 points: not the expectation noise²


def test_overfitting_page_states_the_floor_of_its_own_points():
    at = open_page("pages/05_overfitting.py")
    assert not at.exception
    r = overfit.fit(overfit.FitConfig())
    caption = next(c.value for c in at.caption if "noise floor" in c.value)
    assert f"{r.noise_floor:.4f}" in caption and "about" not in caption
    assert float(next(m.value for m in at.metric if m.label == "Validation MSE")) >= r.noise_floor


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


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


def test_overfitting_page_gap_responds_to_data_and_weight_decay():
    at = open_page("pages/05_overfitting.py")
    assert not at.exception
    m = _metrics(at)
    base_gap = float(m["Gap"])
    assert float(m["Validation MSE"]) > 3 * float(m["Training MSE"])
    at.select_slider(key="overfitting.decay").set_value(0.003).run()
    assert float(_metrics(at)["Gap"]) < base_gap
    at.select_slider(key="overfitting.decay").set_value(0.0).run()
    at.slider(key="overfitting.n").set_value(100).run()
    assert float(_metrics(at)["Gap"]) < 0.5 * base_gap
    at.checkbox(key="overfitting.early").check().run()
    assert not at.exception
    assert any("Early stopping kept" in c.value for c in at.caption)
