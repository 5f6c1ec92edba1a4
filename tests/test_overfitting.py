"""Page 05 (Overfitting): the noise floor is measured on the validation points shown."""

from __future__ import annotations

import math

import numpy as np
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
