"""Activation functions written out by hand, with their hand-derived derivatives.

Tests check the values against torch.nn.functional and the derivatives against autograd; the
toy neuron of page 01 and the activation comparison of page 03 use these same formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

LEAKY_SLOPE = 0.01
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _phi(x: torch.Tensor) -> torch.Tensor:  # standard normal density
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _Phi(x: torch.Tensor) -> torch.Tensor:  # standard normal CDF
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def _gelu_tanh_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
    return torch.tanh(u), _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    df: Callable[[torch.Tensor], torch.Tensor]  # derived by hand, not by autograd
    formula: str  # LaTeX


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "relu", lambda x: torch.clamp(x, min=0), lambda x: (x > 0).to(x.dtype), r"\max(0, x)"
        ),
        Activation(
            "leaky_relu",
            lambda x: torch.where(x > 0, x, LEAKY_SLOPE * x),
            lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, LEAKY_SLOPE)),
            rf"\max({LEAKY_SLOPE}x, x)",
        ),
        Activation("gelu", lambda x: x * _Phi(x), lambda x: _Phi(x) + x * _phi(x), r"x\,\Phi(x)"),
        Activation(
            "gelu_tanh",
            lambda x: 0.5 * x * (1 + _gelu_tanh_parts(x)[0]),
            lambda x: (lambda t, du: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)(
                *_gelu_tanh_parts(x)
            ),
            r"\tfrac{x}{2}\left(1+\tanh\left(\sqrt{2/\pi}\,(x+0.044715x^3)\right)\right)",
        ),
        Activation(
            "silu",
            lambda x: x / (1 + torch.exp(-x)),
            lambda x: (lambda s: s * (1 + x * (1 - s)))(1 / (1 + torch.exp(-x))),
            r"x\,\sigma(x)",
        ),
        Activation(
            "sigmoid",
            lambda x: 1 / (1 + torch.exp(-x)),
            lambda x: (lambda s: s * (1 - s))(1 / (1 + torch.exp(-x))),
            r"\sigma(x) = 1/(1+e^{-x})",
        ),
        Activation("tanh", lambda x: torch.tanh(x), lambda x: 1 - torch.tanh(x) ** 2, r"\tanh(x)"),
        Activation("linear", lambda x: x, lambda x: torch.ones_like(x), r"x"),
    )
}
NAMES: tuple[str, ...] = tuple(ACTIVATIONS)
LABELS = {
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "gelu": "GELU (exact)",
    "gelu_tanh": "GELU (tanh)",
    "silu": "SiLU / swish",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "linear": "linear (none)",
}


class ActivationModule(nn.Module):
    """One of the hand-written activations as a layer, for training networks with it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.act = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act.f(x)


@dataclass(frozen=True)
class Curves:
    x: np.ndarray  # (n,)
    values: dict[str, np.ndarray]
    derivatives: dict[str, np.ndarray]


def curves(names: tuple[str, ...], lo: float = -4.0, hi: float = 4.0, n: int = 201) -> Curves:
    """Each activation and its derivative sampled over [lo, hi]."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    return Curves(
        x.numpy(),
        {k: ACTIVATIONS[k].f(x).numpy() for k in names},
        {k: ACTIVATIONS[k].df(x).numpy() for k in names},
    )


# ---- the single neuron of page 01 ---------------------------------------------------------


@dataclass(frozen=True)
class NeuronPlane:
    grid: np.ndarray  # (res,) coordinates on each axis
    output: np.ndarray  # (res, res) activation over the plane, rows = x2
    line: np.ndarray  # (k, 2) points of w1·x1 + w2·x2 + b = 0 inside the plane (k may be 0)


def neuron(
    x1: float, x2: float, w1: float, w2: float, b: float, activation: str
) -> tuple[float, float]:
    """(z, a): the weighted sum and the neuron's output for one input."""
    z = w1 * x1 + w2 * x2 + b
    return z, float(ACTIVATIONS[activation].f(torch.tensor(z, dtype=torch.float64)))


def neuron_plane(
    w1: float, w2: float, b: float, activation: str, extent: float = 3.0, res: int = 41
) -> NeuronPlane:
    """The neuron's output over [-extent, extent]² and its decision line."""
    axis = np.linspace(-extent, extent, res)
    g1, g2 = np.meshgrid(axis, axis)  # rows = x2
    z = torch.from_numpy(w1 * g1 + w2 * g2 + b)
    out = ACTIVATIONS[activation].f(z).numpy()
    if abs(w2) > 1e-9:
        xs = np.linspace(-extent, extent, 50)
        pts = np.stack([xs, -(w1 * xs + b) / w2], 1)
    elif abs(w1) > 1e-9:
        ys = np.linspace(-extent, extent, 50)
        pts = np.stack([np.full_like(ys, -b / w1), ys], 1)
    else:
        pts = np.zeros((0, 2))  # no weights: z = b everywhere, there is no line
    inside = (np.abs(pts) <= extent + 1e-9).all(1) if len(pts) else np.zeros(0, bool)
    return NeuronPlane(axis, out, pts[inside])
