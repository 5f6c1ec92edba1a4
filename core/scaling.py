"""Compute and scale: C = 6ND, the Chinchilla fits, known models, training time and cost,
and a live mini scaling sweep of tiny GPTs on the shipped corpus.

Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models": Approach 3 fits
L(N, D) = E + A/N^alpha + B/D^beta. The paper prints E = 1.69, alpha = 0.34, beta = 0.28, but its
own tables were computed with the unrounded values from its TeX source (E = 1.6934,
alpha = 0.3392, beta = 0.2849; Besiroglu et al. 2024, "Chinchilla Scaling: A replication
attempt"). Because the exponents multiply logarithms of about 25, the rounded ones give
compute-optimal sizes tens of percent off the paper's table: this module uses the unrounded
ones and its tests hold each method against the paper's own table for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core import pretraining_loop as pt

Report = Callable[..., None]


def training_flops(params: float, tokens: float) -> float:
    """C = 6ND: 2 FLOPs per parameter per token forward (a multiply and an add), 4 backward."""
    return 6.0 * params * tokens


@dataclass(frozen=True)
class ParametricFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    @property
    def a(self) -> float:  # N_opt grows as C^a
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:  # D_opt grows as C^b
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

    def optimal(self, flops: float) -> tuple[float, float]:
        """Minimise L(N, D) subject to 6ND = C (the paper's equation 4)."""
        return self.G * (flops / 6) ** self.a, (flops / 6) ** self.b / self.G


CHINCHILLA = ParametricFit(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)
CHINCHILLA_ROUNDED = ParametricFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
TOKENS_PER_PARAM = 20.0


def twenty_tokens_rule(flops: float) -> tuple[float, float]:
    """D = 20 N with C = 6ND gives N = sqrt(C / 120)."""
    n = math.sqrt(flops / (6 * TOKENS_PER_PARAM))
    return n, TOKENS_PER_PARAM * n


# The paper's own projections: (parameters, FLOPs, tokens). Table 3 is Approach 1; Table A3 gives
# Approaches 2 and 3. Table A3 prints 1.26e+24 for Approach 3's 175B row, a typo for 1.26e25
# (6ND with its own 12.0T tokens gives 1.26e25).
TABLE_3_APPROACH_1 = (
    (400e6, 1.92e19, 8.0e9),
    (1e9, 1.21e20, 20.2e9),
    (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12),
    (175e9, 3.85e24, 3.7e12),
    (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12),
    (1e12, 1.27e26, 21.2e12),
    (10e12, 1.30e28, 216.2e12),
)
TABLE_A3_APPROACH_2 = (
    (400e6, 1.84e19, 7.7e9),
    (1e9, 1.20e20, 20.0e9),
    (10e9, 1.32e22, 219.5e9),
    (67e9, 6.88e23, 1.7e12),
    (175e9, 4.54e24, 4.3e12),
    (280e9, 1.18e25, 7.1e12),
    (520e9, 4.19e25, 13.4e12),
    (1e12, 1.59e26, 26.5e12),
    (10e12, 1.75e28, 292.0e12),
)
TABLE_A3_APPROACH_3 = (
    (400e6, 2.21e19, 9.2e9),
    (1e9, 1.62e20, 27.1e9),
    (10e9, 2.46e22, 410.1e9),
    (67e9, 1.71e24, 4.1e12),
    (175e9, 1.26e25, 12.0e12),
    (280e9, 3.52e25, 20.1e12),
    (520e9, 1.36e26, 43.5e12),
    (1e12, 5.65e26, 94.1e12),
    (10e12, 8.55e28, 1425.5e12),
)


@dataclass(frozen=True)
class KnownModel:
    name: str
    params: float
    tokens: float
    source: str

    @property
    def flops(self) -> float:
        return training_flops(self.params, self.tokens)


def known_models(smollm2_params: int | None = None) -> tuple[KnownModel, ...]:
    """Published sizes and training tokens. Parameter counts come from the published configs
    through core.full_model's formula; SmolLM2's from the loaded model itself when given."""
    from core.inspect.anatomy import geometry
    from core.shared.published import PUBLISHED_CONFIGS, parameter_count

    counted = {c["name"]: parameter_count(geometry(c)).total for c in PUBLISHED_CONFIGS}
    smol = smollm2_params or counted["SmolLM2 135M"]
    return (
        KnownModel(
            "GPT-3 175B", counted["GPT-3 175B"], 300e9, "Brown et al. 2020: 300B training tokens"
        ),
        KnownModel("Chinchilla 70B", 70e9, 1.4e12, "Hoffmann et al. 2022: 70B, 1.4T tokens"),
        KnownModel("Llama 2 7B", counted["Llama-2 7B"], 2e12, "Touvron et al. 2023: 2T tokens"),
        KnownModel(
            "Llama 3 8B", counted["Llama-3 8B"], 15e12, "Llama 3 model card: over 15T tokens"
        ),
        KnownModel("SmolLM2-135M", smol, 2e12, "SmolLM2 model card: 2T tokens"),
    )


def isoflop_curve(fit: ParametricFit, flops: float, params: np.ndarray) -> np.ndarray:
    """Predicted loss along a fixed budget: each N trains on D = C / (6N) tokens."""
    return fit.loss(params, flops / (6 * params))


# ---- training time and cost ------------------------------------------------------------------

GPU_PEAK_FLOPS = {  # dense bf16 tensor-core peak, from the vendors' datasheets
    "NVIDIA A100 (312 TFLOP/s bf16)": 312e12,
    "NVIDIA H100 SXM (989 TFLOP/s bf16)": 989e12,
    "NVIDIA V100 (125 TFLOP/s fp16)": 125e12,
}


@dataclass(frozen=True)
class TrainingTime:
    seconds: float
    gpu_hours: float
    cost: float


def training_time(
    flops: float, gpus: int, peak_flops: float, mfu: float, price_per_gpu_hour: float
) -> TrainingTime:
    """Wall time = C / (GPUs x peak x MFU): MFU is the share of the peak the run really uses."""
    seconds = flops / (gpus * peak_flops * mfu)
    gpu_hours = seconds * gpus / 3600
    return TrainingTime(seconds, gpu_hours, gpu_hours * price_per_gpu_hour)


# ---- the mini scaling sweep ------------------------------------------------------------------

SWEEP_SIZES: tuple[tuple[int, int], ...] = ((1, 16), (1, 32), (2, 48), (2, 64), (2, 96))
SWEEP_BATCH, SWEEP_CONTEXT = 16, 64


@dataclass(frozen=True)
class SweepRun:
    n_layer: int
    d_model: int
    params: int
    compute: tuple[float, ...]  # 6 N x tokens seen, at each evaluation
    val_loss: tuple[float, ...]


@dataclass(frozen=True)
class PowerLaw:
    coefficient: float
    exponent: float  # L = coefficient * C^-exponent

    def __call__(self, c: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.power(c, -self.exponent)


@dataclass(frozen=True)
class SweepResult:
    runs: tuple[SweepRun, ...]
    frontier: tuple[tuple[float, float], ...]  # (compute, lowest validation loss at it)
    law: PowerLaw
    seconds: float


def sweep_config(n_layer: int, d_model: int, steps: int) -> pt.TrainConfig:
    heads = max(1, d_model // 16)
    return pt.TrainConfig(
        batch_size=SWEEP_BATCH,
        context=SWEEP_CONTEXT,
        lr=3e-3,
        warmup=max(1, steps // 10),
        steps=steps,
        n_layer=n_layer,
        n_head=heads,
        d_model=d_model,
        eval_every=max(1, steps // 8),
        sample_every=10**9,
    )


def fit_power_law(compute: np.ndarray, loss: np.ndarray) -> PowerLaw:
    """Least squares on log L = log k - g log C."""
    slope, intercept = np.polyfit(np.log(compute), np.log(loss), 1)
    return PowerLaw(float(math.exp(intercept)), float(-slope))


def lower_envelope(runs: tuple[SweepRun, ...]) -> tuple[tuple[float, float], ...]:
    """At each run's evaluation points, the lowest loss any run reached with at most that compute."""
    points = sorted((c, v) for r in runs for c, v in zip(r.compute, r.val_loss) if c > 0)
    out, best = [], math.inf
    for c, v in points:
        if v < best:
            best = v
            out.append((c, v))
    return tuple(out)


def scaling_sweep(
    corpus: pt.TokenizedCorpus,
    steps: int,
    sizes: tuple[tuple[int, int], ...] | None = None,
    report: Report = lambda *a, **k: None,
) -> SweepResult:
    """Train one tiny GPT per (layers, width) for `steps` steps; validation loss against the
    compute spent so far. `sizes` defaults to SWEEP_SIZES."""
    sizes = SWEEP_SIZES if sizes is None else sizes
    t0, runs = time.perf_counter(), []
    weights = [n * d * d for n, d in sizes]  # progress weighted by each model's rough cost
    done = 0.0
    for (n_layer, d_model), w in zip(sizes, weights):
        cfg = sweep_config(n_layer, d_model, steps)
        label = f"model {len(runs) + 1} of {len(sizes)} ({n_layer} layers, d={d_model})"

        def inner(f: float, text: str = "", partial=None, done=done, w=w, label=label) -> None:
            report((done + f * w) / sum(weights), f"{label}: {text}")

        log = pt.train(corpus, cfg, inner)
        per_token = training_flops(log.n_params, 1)
        runs.append(
            SweepRun(
                n_layer,
                d_model,
                log.n_params,
                tuple(per_token * e.step * SWEEP_BATCH * SWEEP_CONTEXT for e in log.evals),
                tuple(e.val for e in log.evals),
            )
        )
        done += w
    runs_t = tuple(runs)
    frontier = lower_envelope(runs_t)
    compute, loss = np.array(frontier).T
    return SweepResult(runs_t, frontier, fit_power_law(compute, loss), time.perf_counter() - t0)
