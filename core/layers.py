"""The small torch trainer behind pages 02, 04 and 05: TensorFlow Playground's datasets,
input features and MLP, trained one mini-batch at a time so a page can animate it.

Datasets follow TensorFlow Playground's generators (500 points in [-6, 6]², labels 0/1);
the loss is binary cross-entropy on a sigmoid output, the optimiser plain SGD.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core.activations import ActivationModule

DATASETS: tuple[str, ...] = ("circle", "xor", "gauss", "spiral")
FEATURES: tuple[str, ...] = ("x", "y", "x²", "y²", "xy", "sin x", "sin y")
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "linear")
REGULARIZATIONS: tuple[str, ...] = ("none", "L1", "L2")
LEARNING_RATES: tuple[float, ...] = (
    0.00001,
    0.0001,
    0.001,
    0.003,
    0.01,
    0.03,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
)
REG_RATES: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
N_POINTS = 500
DOMAIN = 6.0  # the plane shown is [-6, 6]²
MAX_LAYERS = 6
MAX_NEURONS = 8
EPOCH_CAP = 300  # an animated run stops by itself here


@dataclass(frozen=True)
class PlaygroundConfig:
    dataset: str = "circle"
    noise: int = 0  # percent, 0-50
    train_ratio: int = 50  # percent of the points used for training, 10-90
    batch_size: int = 10
    features: tuple[str, ...] = ("x", "y")
    hidden: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    learning_rate: float = 0.03
    regularization: str = "none"
    reg_rate: float = 0.0
    seed: int = 0

    def structure(self) -> tuple:
        """What changes the data or the network's shape: changing it means a fresh network."""
        return (
            self.dataset,
            self.noise,
            self.train_ratio,
            self.features,
            self.hidden,
            self.activation,
            self.seed,
        )


# ---- threads -------------------------------------------------------------------------------
# On a busy two-core machine, an op that opens a parallel region (tanh, exp, erf backward, ...)
# waits milliseconds for the second thread even for ten numbers, making a 0.3 ms step 10-100x
# slower. Toy networks therefore run with one intra-op thread. The setting is process-wide, so
# a counter restores the previous value only when the last toy job in the process finishes.
_THREADS_LOCK = threading.Lock()
_toy_jobs = 0
_saved_threads = 0


@contextmanager
def toy_threads() -> Iterator[None]:
    global _toy_jobs, _saved_threads
    with _THREADS_LOCK:
        if _toy_jobs == 0:
            _saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        _toy_jobs += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _toy_jobs -= 1
            if _toy_jobs == 0:
                torch.set_num_threads(_saved_threads)


# ---- data ----------------------------------------------------------------------------------


def _circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    radius = 5.0
    pts, labels = [], []
    for inside, (lo, hi) in ((1, (0.0, 0.5 * radius)), (0, (0.7 * radius, radius))):
        r = rng.uniform(lo, hi, n // 2)
        a = rng.uniform(0, 2 * math.pi, n // 2)
        xy = np.stack([r * np.sin(a), r * np.cos(a)], 1)
        jitter = rng.uniform(-radius, radius, (n // 2, 2)) * noise
        # as in the Playground: the point stays, its label comes from the jittered position
        labels.append(
            (np.linalg.norm(xy + jitter, axis=1) < 0.5 * radius).astype(np.float32)
            if noise > 0
            else np.full(n // 2, inside, np.float32)
        )
        pts.append(xy)
    return np.concatenate(pts), np.concatenate(labels)


def _xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.uniform(-5, 5, (n, 2))
    xy += np.where(xy > 0, 0.3, -0.3)  # keep points off the axes
    jitter = rng.uniform(-5, 5, (n, 2)) * noise
    noisy = xy + jitter
    return xy, (noisy[:, 0] * noisy[:, 1] >= 0).astype(np.float32)


def _gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    std = math.sqrt(0.5 + 3.5 * noise / 0.5)  # variance 0.5 at no noise, 4 at 50 %
    pos = rng.normal(2, std, (n // 2, 2))
    neg = rng.normal(-2, std, (n // 2, 2))
    return np.concatenate([pos, neg]), np.repeat(np.array([1, 0], np.float32), n // 2)


def _spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    pts, labels = [], []
    for label, delta in ((1, 0.0), (0, math.pi)):
        i = np.arange(n // 2)
        r = i / (n // 2) * 5
        t = 1.75 * i / (n // 2) * 2 * math.pi + delta
        xy = np.stack([r * np.sin(t), r * np.cos(t)], 1)
        pts.append(xy + rng.uniform(-1, 1, (n // 2, 2)) * noise)
        labels.append(np.full(n // 2, label, np.float32))
    return np.concatenate(pts), np.concatenate(labels)


_GENERATORS = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral}


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n_train, 2) raw coordinates
    y_train: np.ndarray  # (n_train,) labels 0/1
    x_test: np.ndarray
    y_test: np.ndarray


def make_dataset(
    name: str, noise: int = 0, train_ratio: int = 50, seed: int = 0, n: int = N_POINTS
) -> Dataset:
    """Points and labels for a Playground dataset, shuffled and split into train and test."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown dataset {name!r}")
    rng = np.random.default_rng(seed)
    xy, y = _GENERATORS[name](rng, n, min(max(noise, 0), 50) / 100)
    order = rng.permutation(len(y))
    xy, y = xy[order].astype(np.float32), y[order]
    k = max(2, min(len(y) - 2, round(len(y) * train_ratio / 100)))
    return Dataset(xy[:k], y[:k], xy[k:], y[k:])


def feature_matrix(xy: np.ndarray | torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """The chosen input features of raw (x, y) points: (n, len(names))."""
    t = torch.as_tensor(xy, dtype=torch.float32)
    x, y = t[:, 0], t[:, 1]
    table = {
        "x": lambda: x,
        "y": lambda: y,
        "x²": lambda: x * x,
        "y²": lambda: y * y,
        "xy": lambda: x * y,
        "sin x": lambda: torch.sin(x),
        "sin y": lambda: torch.sin(y),
    }
    return torch.stack([table[f]() for f in names], 1)


# ---- network -------------------------------------------------------------------------------


def activation_module(name: str) -> nn.Module:
    """torch's own layer for the Playground's four; the hand-written formula for the others."""
    builtin = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}
    return builtin[name]() if name in builtin else ActivationModule(name)


def build_mlp(
    n_in: int,
    hidden: tuple[int, ...],
    activation: str,
    seed: int = 0,
    dropout: float = 0.0,
    n_out: int = 1,
) -> nn.Sequential:
    """Linear -> activation (-> dropout) per hidden layer, then a linear output of `n_out`."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation_module(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy, softplus(z) - y·z. Equal to F.binary_cross_entropy_with_logits,
    but built from ops that stay on one thread: torch's own version opens a parallel region
    even for ten numbers, which costs milliseconds on a busy two-core machine."""
    return (nn.functional.softplus(logits) - target * logits).mean()


EVAL_CHUNK = 200  # rows per forward when evaluating many points, for the same reason


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(inputs[i : i + EVAL_CHUNK]) for i in range(0, len(inputs), EVAL_CHUNK)])


def weight_penalty(model: nn.Module, kind: str) -> torch.Tensor:
    """Sum of |w| (L1) or w²/2 (L2) over weight matrices; biases are not penalised."""
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    if kind == "L1":
        return sum(w.abs().sum() for w in weights)
    if kind == "L2":
        return sum((w * w).sum() for w in weights) / 2
    return torch.zeros(())


def hidden_activations(model: nn.Sequential, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Every hidden layer's output (after its activation) for `inputs`: [(n, width), ...]."""
    outs = []
    h = inputs
    for module in model:
        h = module(h)
        if not isinstance(module, (nn.Linear, nn.Dropout)):
            outs.append(h)
    return outs


@dataclass(frozen=True)
class Snapshot:
    """What a page draws after some training: grids over the plane and the curves so far."""

    epoch: int
    grid: np.ndarray  # (res,) coordinates along each axis
    output: np.ndarray  # (res, res) P(class 1) over the plane, rows = y
    neurons: tuple[np.ndarray, ...]  # per hidden layer (width, res, res) activations
    inputs: np.ndarray  # (n_features, res, res) the features themselves
    train_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    train_accuracy: float
    test_accuracy: float


@dataclass
class Playground:
    """A network and its data, trained a few mini-batch steps at a time."""

    config: PlaygroundConfig
    data: Dataset = field(init=False)
    model: nn.Sequential = field(init=False)
    epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.config
        self.data = make_dataset(c.dataset, c.noise, c.train_ratio, c.seed)
        self._xtr = feature_matrix(self.data.x_train, c.features)
        self._ytr = torch.from_numpy(self.data.y_train)
        self._xte = feature_matrix(self.data.x_test, c.features)
        self._yte = torch.from_numpy(self.data.y_test)
        self.model = build_mlp(len(c.features), c.hidden, c.activation, c.seed)
        self._opt = torch.optim.SGD(self.model.parameters(), lr=c.learning_rate)
        self._gen = torch.Generator().manual_seed(c.seed)
        self._record()

    def retune(self, config: PlaygroundConfig) -> None:
        """Change learning rate, batch size or regularisation without resetting the weights."""
        self.config = config
        for group in self._opt.param_groups:
            group["lr"] = config.learning_rate

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        """One SGD step on a mini-batch; returns the batch's data loss."""
        c = self.config
        loss = bce_with_logits(self.model(xb)[:, 0], yb)
        total = loss
        if c.regularization != "none" and c.reg_rate > 0:
            total = loss + c.reg_rate * weight_penalty(self.model, c.regularization)
        self._opt.zero_grad(set_to_none=True)
        total.backward()
        self._opt.step()
        return float(loss.detach())

    def train_epochs(self, epochs: int = 1, budget_s: float | None = None) -> int:
        """Up to `epochs` shuffled passes over the training set in mini-batches of
        `batch_size`; with a time budget, stops after the epoch that exhausts it (at least
        one epoch runs). Returns the number of epochs trained."""
        with toy_threads():
            return self._train_epochs(epochs, budget_s)

    def _train_epochs(self, epochs: int, budget_s: float | None) -> int:
        b = max(1, self.config.batch_size)
        self.model.train()
        began = time.perf_counter()
        for done in range(epochs):
            if done and budget_s is not None and time.perf_counter() - began > budget_s:
                return done
            order = torch.randperm(len(self._ytr), generator=self._gen)
            for start in range(0, len(order), b):
                idx = order[start : start + b]
                self.step(self._xtr[idx], self._ytr[idx])
            self.epoch += 1
            self._record()
        return max(epochs, 0)

    @torch.no_grad()
    def _record(self) -> None:
        self.model.eval()
        for x, y, curve in (
            (self._xtr, self._ytr, self.train_loss),
            (self._xte, self._yte, self.test_loss),
        ):
            curve.append(float(bce_with_logits(predict_logits(self.model, x)[:, 0], y)))

    @torch.no_grad()
    def accuracy(self, split: str = "test") -> float:
        x, y = (self._xte, self._yte) if split == "test" else (self._xtr, self._ytr)
        pred = (predict_logits(self.model, x)[:, 0] > 0).float()
        return float((pred == y).float().mean())

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.train_loss[-1])

    def snapshot(self, res: int = 40) -> Snapshot:
        """The output and every hidden neuron over a res x res grid of the plane."""
        with toy_threads(), torch.no_grad():
            return self._snapshot(res)

    def _snapshot(self, res: int) -> Snapshot:
        self.model.eval()
        axis = np.linspace(-DOMAIN, DOMAIN, res, dtype=np.float32)
        gx, gy = np.meshgrid(axis, axis)  # rows = y, columns = x
        feats = feature_matrix(np.stack([gx.ravel(), gy.ravel()], 1), self.config.features)
        chunks = [feats[i : i + EVAL_CHUNK] for i in range(0, len(feats), EVAL_CHUNK)]
        per_chunk = [hidden_activations(self.model, c) for c in chunks]
        hidden = [torch.cat([p[k] for p in per_chunk]) for k in range(len(self.config.hidden))]
        out = torch.sigmoid(predict_logits(self.model, feats)[:, 0]).reshape(res, res)
        return Snapshot(
            epoch=self.epoch,
            grid=axis,
            output=out.numpy(),
            neurons=tuple(h.T.reshape(-1, res, res).numpy() for h in hidden),
            inputs=feats.T.reshape(-1, res, res).numpy(),
            train_loss=tuple(self.train_loss),
            test_loss=tuple(self.test_loss),
            train_accuracy=self.accuracy("train"),
            test_accuracy=self.accuracy("test"),
        )


def train_run(config: PlaygroundConfig, epochs: int) -> Playground:
    """A fresh network trained for `epochs` epochs (used by comparisons and tests)."""
    pg = Playground(config)
    pg.train_epochs(epochs)
    return pg
