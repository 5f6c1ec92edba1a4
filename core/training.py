"""Backpropagation and optimisers made visible: a tiny expression graph with autograd's
gradients, and a two-parameter model whose loss surface the optimisers walk across."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# ---- the expression graph: L = (tanh(x1·w1 + x2·w2 + b) - y)² -----------------------------


@dataclass(frozen=True)
class Node:
    name: str
    op: str  # "input", "*", "+", "tanh", "-", "²"
    value: float
    grad: float  # dL/d(this node), from autograd
    inputs: tuple[str, ...]


def expression_graph(
    x1: float, x2: float, w1: float, w2: float, b: float, target: float
) -> tuple[Node, ...]:
    """Forward values and autograd's backward gradients of every node of one neuron's loss."""
    leaf = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for k, v in dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, y=target).items()
    }
    inner = {}
    inner["x1·w1"] = leaf["x1"] * leaf["w1"]
    inner["x2·w2"] = leaf["x2"] * leaf["w2"]
    inner["s"] = inner["x1·w1"] + inner["x2·w2"]
    inner["z"] = inner["s"] + leaf["b"]
    inner["a"] = torch.tanh(inner["z"])
    inner["e"] = inner["a"] - leaf["y"]
    inner["L"] = inner["e"] ** 2
    for t in inner.values():
        t.retain_grad()
    inner["L"].backward()
    wiring = {
        "x1·w1": ("*", ("x1", "w1")),
        "x2·w2": ("*", ("x2", "w2")),
        "s": ("+", ("x1·w1", "x2·w2")),
        "z": ("+", ("s", "b")),
        "a": ("tanh", ("z",)),
        "e": ("-", ("a", "y")),
        "L": ("²", ("e",)),
    }
    nodes = [Node(k, "input", t.item(), t.grad.item(), ()) for k, t in leaf.items()]
    nodes += [
        Node(k, wiring[k][0], t.item(), t.grad.item(), wiring[k][1]) for k, t in inner.items()
    ]
    return tuple(nodes)


def hand_gradients(
    x1: float, x2: float, w1: float, w2: float, b: float, target: float
) -> dict[str, float]:
    """The same gradients by the chain rule, written out by hand."""
    z = x1 * w1 + x2 * w2 + b
    a = math.tanh(z)
    dl_da = 2 * (a - target)
    dl_dz = dl_da * (1 - a * a)
    return {
        "L": 1.0,
        "e": dl_da,
        "a": dl_da,
        "z": dl_dz,
        "s": dl_dz,
        "b": dl_dz,
        "x1·w1": dl_dz,
        "x2·w2": dl_dz,
        "w1": dl_dz * x1,
        "x1": dl_dz * w1,
        "w2": dl_dz * x2,
        "x2": dl_dz * w2,
        "y": -dl_da,
    }


# ---- a two-parameter model and its loss surface --------------------------------------------

TRUE_W, TRUE_B = 1.5, -1.0
N_POINTS = 64
START = (-2.0, 3.5)
W_RANGE = (-3.0, 4.0)
B_RANGE = (-4.0, 5.0)
OPTIMIZERS: tuple[str, ...] = ("SGD", "momentum", "Adam")
STEP_CAP = 200
DIVERGED_LOSS = 1e6


def regression_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 1.5x - 1 + noise, x in [0, 4]: uncentred inputs make the loss valley long and thin."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N_POINTS, generator=g, dtype=torch.float64) * 4
    y = TRUE_W * x + TRUE_B + 0.3 * torch.randn(N_POINTS, generator=g, dtype=torch.float64)
    return x, y


def mse(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((w * x + b - y) ** 2).mean()


def loss_surface(res: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w axis, b axis, loss (res_b, res_w)) of the mean squared error over the whole data."""
    x, y = regression_data(seed)
    ws = torch.linspace(*W_RANGE, res, dtype=torch.float64)
    bs = torch.linspace(*B_RANGE, res, dtype=torch.float64)
    pred = ws[None, :, None] * x + bs[:, None, None]  # (res_b, res_w, N)
    return ws.numpy(), bs.numpy(), ((pred - y) ** 2).mean(-1).numpy()


def divergence_threshold(seed: int = 0) -> float:
    """Full-batch SGD on a quadratic diverges above lr = 2 / largest Hessian eigenvalue."""
    x, _ = regression_data(seed)
    hessian = 2 * torch.tensor([[float((x * x).mean()), float(x.mean())], [float(x.mean()), 1.0]])
    return float(2 / torch.linalg.eigvalsh(hessian).max())


@dataclass(frozen=True)
class OptimizerPath:
    points: np.ndarray  # (k, 2) (w, b) after each step, starting point first
    losses: np.ndarray  # (k,) full-data loss at each point
    diverged: bool


def optimizer_path(
    optimizer: str,
    lr: float,
    batch_size: int = N_POINTS,
    steps: int = 100,
    seed: int = 0,
    start: tuple[float, float] = START,
) -> OptimizerPath:
    """Walk the loss surface with torch's own optimiser; stop early if the loss blows up."""
    x, y = regression_data(seed)
    w = torch.tensor(start[0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(start[1], dtype=torch.float64, requires_grad=True)
    opt = {
        "SGD": lambda p: torch.optim.SGD(p, lr=lr),
        "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
        "Adam": lambda p: torch.optim.Adam(p, lr=lr),
    }[optimizer]([w, b])
    g = torch.Generator().manual_seed(seed + 1)
    points, losses = [start], [float(mse(w, b, x, y).detach())]
    for _ in range(min(steps, STEP_CAP)):
        idx = torch.randperm(N_POINTS, generator=g)[: max(1, min(batch_size, N_POINTS))]
        opt.zero_grad()
        mse(w, b, x[idx], y[idx]).backward()
        opt.step()
        with torch.no_grad():
            loss = float(mse(w, b, x, y))
        points.append((w.item(), b.item()))
        losses.append(loss)
        if not math.isfinite(loss) or loss > DIVERGED_LOSS:
            return OptimizerPath(np.array(points), np.array(losses), True)
    return OptimizerPath(np.array(points), np.array(losses), False)


def direction_reversals(points: np.ndarray) -> int:
    """How often a path turns back: consecutive steps whose directions are more than 90° apart.

    A path that zig-zags across a valley reverses on almost every step; one that slides down a
    wall and then along the floor never does; one that overshoots and swings round the
    minimum reverses every few steps."""
    steps = np.diff(np.asarray(points, dtype=np.float64), axis=0)  # (k-1, 2)
    steps = steps[np.linalg.norm(steps, axis=1) > 1e-12]  # a step of zero has no direction
    return int((np.einsum("ij,ij->i", steps[1:], steps[:-1]) < 0).sum())
