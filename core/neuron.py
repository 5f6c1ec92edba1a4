"""Real neurons of a causal LM's MLP blocks, for Llama-style (gated SwiGLU) and GPT-2-style
(c_fc -> GELU -> c_proj) models: capture with scoped hooks, recompute by hand, compare layers.
Where the MLP's parts are is `core.inspect.anatomy`'s business (`anatomy(model).mlp(layer)`).

A "neuron" is one unit of the MLP's hidden layer: the input to the output projection
(down_proj / c_proj), i.e. act(gate(x)) * up(x) for Llama, act(c_fc(x)) for GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import require
from core.inspect.hooks import capture_inputs, capture_outputs
from core.runtime.models import heavy_work

# A few varied sentences: a neuron's top-activating tokens are looked for here and in the prompt.
REFERENCE_TEXT = (
    "The cat sat on the mat while the dog slept by the fire. "
    "In 1969, Neil Armstrong walked on the Moon; millions watched on television. "
    "def add(a, b):\n    return a + b\n"
    "Paris is the capital of France, and Berlin is the capital of Germany. "
    "She said: \"I can't believe it's already December!\" "
    "The price rose from $12.50 to $19.99 in three weeks. "
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen. "
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10. "
    "He was angry, then sad, then happy again. "
    "<html><body><p>Hello, world</p></body></html> "
    "Transformers read text as tokens and predict the next one."
)


@dataclass(frozen=True)
class MlpCapture:
    mlp_input: np.ndarray  # (T, d) what the MLP block received (after its norm)
    preact: np.ndarray  # (T, d_ff) input to the activation function (gate_proj / c_fc output)
    neurons: np.ndarray  # (T, d_ff) input to the output projection


def capture_mlp(model: Any, input_ids: list[int] | tuple[int, ...], layer: int) -> MlpCapture:
    """One forward pass; the MLP of `layer` as the model computed it (read-only hooks that see
    this thread's forward pass only, removed afterwards: the model is shared)."""
    parts = require(model, "mlp").mlp(layer)
    with (
        heavy_work(),
        torch.inference_mode(),
        capture_inputs({"in": parts.mlp, "n": parts.down}) as inputs,
        capture_outputs({"pre": parts.up}) as outputs,
    ):
        model(torch.tensor([list(input_ids)]), use_cache=False)
    return MlpCapture(
        *(t[0].float().numpy().copy() for t in (inputs["in"], outputs["pre"], inputs["n"]))
    )


@torch.inference_mode()
def recompute_neurons(model: Any, layer: int, mlp_input: np.ndarray) -> np.ndarray:
    """The neuron activations recomputed by hand from the MLP's input: (T, d_ff)."""
    parts = require(model, "mlp").mlp(layer)
    x = torch.from_numpy(mlp_input)
    h = parts.act(parts.up(x))
    if parts.kind == "gated":
        h = h * parts.gate_mul(x)
    return h.numpy()


@dataclass(frozen=True)
class TopToken:
    token: str
    context: str  # a few tokens before it, then the token in [brackets]
    activation: float


def top_activating(
    tokens: tuple[str, ...], values: np.ndarray, k: int = 8, window: int = 4
) -> list[TopToken]:
    """The k positions where a neuron fires most, with the tokens just before each."""
    order = np.argsort(-values)[:k]
    return [
        TopToken(
            tokens[i], "".join(tokens[max(0, i - window) : i]) + f"[{tokens[i]}]", float(values[i])
        )
        for i in order
    ]


def clearest_neuron(tokens: tuple[str, ...], neurons: np.ndarray, k: int = 8) -> int:
    """The neuron whose k top-activating positions most often hold one and the same token
    (a neuron for commas, for ' the'...), the strongest peak among equals: a neuron with a
    pattern to see, picked by measurement rather than by its index."""
    top = np.argsort(-neurons, axis=0)[:k]  # (k, d_ff) positions
    words = np.asarray([t.strip().lower() for t in tokens], dtype=object)[top]
    agree = np.array(
        [max(np.unique(words[:, j], return_counts=True)[1]) for j in range(neurons.shape[1])]
    )
    peak = neurons.max(axis=0)
    best = np.flatnonzero(agree == agree.max())
    return int(best[np.argmax(peak[best])])


def strongest_neurons(neurons: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The neurons with the largest activation anywhere in the text: [(index, max), ...]."""
    peak = neurons.max(axis=0)  # (d_ff,)
    idx = np.argsort(-peak)[:k]
    return [(int(i), float(peak[i])) for i in idx]


def layer_similarity(hidden: np.ndarray, method: str = "cka") -> np.ndarray:
    """(L+1, L+1) similarity of every layer's hidden states to every other's, over the tokens.

    "cka": linear CKA of the whole (T, d) matrices; "cosine": the mean over tokens of the
    cosine between the same token's vectors at the two layers."""
    n = hidden.shape[0]
    h = hidden.astype(np.float64)  # (L+1, T, d)
    if method == "cosine":
        unit = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
        return np.einsum("itd,jtd->ij", unit, unit) / h.shape[1]
    centred = h - h.mean(1, keepdims=True)
    grams = np.einsum("itd,isd->its", centred, centred)  # (L+1, T, T)
    norms = np.linalg.norm(grams.reshape(n, -1), axis=1)
    inner = np.einsum("its,jts->ij", grams, grams)
    return inner / np.maximum(np.outer(norms, norms), 1e-30)


@dataclass(frozen=True)
class Histogram:
    edges: np.ndarray  # (bins+1,)
    counts: np.ndarray  # (bins,)
    total: int
    fraction_negative: float
    mean: float
    std: float


def histogram(values: np.ndarray, bins: int = 80, clip: float = 99.9) -> Histogram:
    """Counts of values in equal bins, the extreme tails clipped to the outer bins."""
    v = values.ravel().astype(np.float64)
    lo, hi = np.percentile(v, [100 - clip, clip])
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return Histogram(
        edges, counts, int(v.size), float((v < 0).mean()), float(v.mean()), float(v.std())
    )
