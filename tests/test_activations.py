"""Page 03 (Activations): each function and its hand-derived derivative against
torch.nn.functional and autograd, and the page driven through AppTest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_util import chart_data, open_page

from core import activations

X = torch.linspace(-6, 6, 241, dtype=torch.float64)


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


X_NO_KINK = X[X.abs() > 1e-6]  # ReLU-like functions have no derivative at 0


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


def test_activations_page_curves_range_and_histogram():
    at = open_page("pages/03_activations.py")
    assert not at.exception
    at.multiselect(key="activations.chosen").set_value(["relu", "tanh"]).run()
    values = chart_data(at, "activation", "x", "y")
    assert set(values["activation"]) == {"ReLU", "tanh"}
    relu = values[values["activation"] == "ReLU"]
    np.testing.assert_allclose(relu["y"], np.maximum(relu["x"], 0))
    at.slider(key="activations.range").set_value((-1.0, 2.0)).run()
    x = chart_data(at, "activation", "x", "y")["x"]
    assert x.min() == -1.0 and x.max() == 2.0
    hist_before = chart_data(at, "count", "side")["count"].tolist()
    at.slider(key="activations.layer").set_value(0).run()
    assert not at.exception
    assert chart_data(at, "count", "side")["count"].tolist() != hist_before
    assert any("are negative" in c.value for c in at.caption)
