"""Overfitting on purpose: an MLP fitted to a few noisy samples of a smooth curve, with the knobs
that widen or close the gap between training and validation loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.layers import build_mlp, toy_threads

N_VALIDATION = 100
EVAL_EVERY = 5  # steps between two measurements of the curves
EPOCH_CAP = 2000  # full-batch steps, at most
CURVE_POINTS = 200


def truth(x: np.ndarray | torch.Tensor):
    """The function the points are sampled from."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.sin(2 * math.pi * x)


@dataclass(frozen=True)
class FitConfig:
    n_train: int = 15
    noise: float = 0.3  # standard deviation of the noise added to the targets
    width: int = 128  # neurons in each of the two hidden layers: the capacity
    weight_decay: float = 0.0  # L2 penalty on the weights, added to the loss
    dropout: float = 0.0
    early_stopping: bool = False
    patience: int = 100  # steps without a new best validation loss before stopping
    epochs: int = 1000
    lr: float = 0.01
    seed: int = 1


@dataclass(frozen=True)
class FitResult:
    x_train: np.ndarray  # (n,)
    y_train: np.ndarray
    x_curve: np.ndarray  # (CURVE_POINTS,)
    fitted: np.ndarray  # the model's curve (at the best step when stopping early)
    steps: np.ndarray  # (k,) the steps at which the losses were measured
    train_loss: np.ndarray  # (k,) mean squared error
    val_loss: np.ndarray
    stopped_at: int | None  # index into `steps` of the model early stopping kept, else None
    noise_floor: float  # validation MSE of the true curve itself on these validation points

    @property
    def final_train(self) -> float:
        return float(self.train_loss[self.stopped_at if self.stopped_at is not None else -1])

    @property
    def final_val(self) -> float:
        return float(self.val_loss[self.stopped_at if self.stopped_at is not None else -1])

    @property
    def gap(self) -> float:
        return self.final_val - self.final_train


def samples(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g)
    return x, truth(x) + noise * torch.randn(n, 1, generator=g)


def fit(c: FitConfig) -> FitResult:
    """Full-batch Adam for up to `epochs` steps, recording train and validation loss."""
    with toy_threads():
        return _fit(c)


def _fit(c: FitConfig) -> FitResult:
    xt, yt = samples(max(1, c.n_train), c.noise, c.seed)
    xv, yv = samples(N_VALIDATION, c.noise, c.seed + 10_000)
    # no model beats the truth on average, but on 100 fixed points the noise's own mean square
    # differs from its expectation noise²; measure it on the points actually used
    floor = float(((truth(xv) - yv) ** 2).mean())
    model = build_mlp(1, (c.width, c.width), "tanh", c.seed, dropout=c.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    steps, train_curve, val_curve = [], [], []
    best, best_state, best_at = math.inf, None, 0
    for step in range(1, min(c.epochs, EPOCH_CAP) + 1):
        model.train()
        loss = ((model(xt) - yt) ** 2).mean()
        penalty = c.weight_decay * sum((w * w).sum() for w in weights) if c.weight_decay else 0
        opt.zero_grad()
        (loss + penalty).backward()
        opt.step()
        if step % EVAL_EVERY:
            continue
        model.eval()
        with torch.no_grad():
            steps.append(step)
            train_curve.append(float(((model(xt) - yt) ** 2).mean()))
            val_curve.append(float(((model(xv) - yv) ** 2).mean()))
        if c.early_stopping:
            if val_curve[-1] < best:
                best, best_at = val_curve[-1], len(steps) - 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            elif step - steps[best_at] >= c.patience:
                break
    if c.early_stopping and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    xc = torch.linspace(0, 1, CURVE_POINTS)[:, None]
    with torch.no_grad():
        fitted = model(xc)[:, 0].numpy()
    return FitResult(
        xt[:, 0].numpy(),
        yt[:, 0].numpy(),
        xc[:, 0].numpy(),
        fitted,
        np.array(steps),
        np.array(train_curve),
        np.array(val_curve),
        best_at if c.early_stopping and best_state is not None else None,
        floor,
    )
