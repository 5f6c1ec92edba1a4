"""Multi-head attention, heads measured by what they do: how much attention each head gives to
the previous token, the first token (a sink), itself, and the token after an earlier copy of the
current one (induction), on repeated random sequences where only induction can predict the
second copy. Page 09's concept; one head taken apart step by step is `core.attention`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.runtime.models import heavy_work

INDUCTION_HALF = 16  # length of the random sequence that is repeated once for induction
INDUCTION_SEEDS = 4  # random sequences in the probe batch: one forward pass measures them all
HEAD_LABEL_THRESHOLD = 0.3  # a head is named after a pattern that takes this much attention


@dataclass(frozen=True)
class HeadProfile:
    """How much attention each head (layers x heads) gives to four simple patterns, all
    measured on the same texts (the probe's repeated random sequences, averaged over seeds)."""

    previous: np.ndarray  # (L, H) mean attention from t to t-1
    sink: np.ndarray  # (L, H) mean attention from t to position 0
    self_: np.ndarray  # (L, H) mean attention from t to t
    induction: np.ndarray  # (L, H) to the token after the earlier copy of the current token
    induction_low: np.ndarray | None = None  # (L, H) lowest and highest seed's induction score
    induction_high: np.ndarray | None = None
    seeds: int = 1

    PATTERNS = ("previous-token", "first-token sink", "self", "induction")
    # Labels go by thresholds in this order: a head doing a specific job (copying, looking one
    # back) is named after it even if it parks its spare attention on the first token.
    PRIORITY = ("induction", "previous-token", "self", "first-token sink")

    def scores(self) -> np.ndarray:
        return np.stack([self.previous, self.sink, self.self_, self.induction])  # (4, L, H)

    def label(self, layer: int, head: int, threshold: float = HEAD_LABEL_THRESHOLD) -> str:
        """The first pattern in PRIORITY order that takes at least `threshold`, else mixed."""
        s = dict(zip(self.PATTERNS, self.scores()[:, layer, head], strict=True))
        return next((p for p in self.PRIORITY if s[p] >= threshold), "mixed")


def first_layer_showing(
    profile: HeadProfile, prefer: tuple[str, ...] = ("previous-token", "induction")
) -> int:
    """The layer a page opens on: the first one with a head labelled `prefer[0]` (else
    `prefer[1]`, ...), else the layer with the most labelled heads; never a layer where every
    head is 'mixed' when another has something to show."""
    n_layers, n_heads = profile.previous.shape
    labels = [[profile.label(i, h) for h in range(n_heads)] for i in range(n_layers)]
    for wanted in prefer:
        for layer, row in enumerate(labels):
            if wanted in row:
                return layer
    return max(range(n_layers), key=lambda i: sum(lab != "mixed" for lab in labels[i]))


def pattern_scores(attentions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Previous-token, first-token and self attention, averaged over positions t >= 2.

    Rows 0 and 1 are left out: there the only choices coincide (row 0 must attend to itself,
    which is also the first token; row 1's previous token is the first token).
    """
    a = np.asarray(attentions, dtype=np.float32)  # (L, H, T, T)
    t = a.shape[-1]
    if t < 3:
        nan = np.full(a.shape[:2], np.nan, dtype=np.float32)
        return nan, nan, nan
    pos = np.arange(2, t)
    previous = a[..., pos, pos - 1].mean(-1)
    sink = a[..., pos, 0].mean(-1)
    self_ = a[..., pos, pos].mean(-1)
    return previous, sink, self_


def repeated_random_ids(vocab_size: int, half: int = INDUCTION_HALF, seed: int = 0) -> np.ndarray:
    """A random token sequence followed by itself: only induction can predict the second copy."""
    rng = np.random.default_rng(seed)
    low, high = (100, vocab_size - 100) if vocab_size > 1000 else (0, vocab_size)
    first = rng.choice(np.arange(low, high), size=half, replace=False)
    return np.concatenate([first, first])  # (2 * half,)


def _induction(attentions: np.ndarray, half: int) -> np.ndarray:
    """Mean attention from each second-copy token to the token after its first copy."""
    pos = np.arange(half + 1, 2 * half)
    return attentions[..., pos, pos - half + 1].mean(-1)  # (..., L, H)


def _probe_attentions(model: Any, half: int, seeds: Sequence[int]) -> np.ndarray:
    """Attention on one repeated random sequence per seed, in one batch: (S, L, H, 2h, 2h)."""
    ids = np.stack([repeated_random_ids(int(model.config.vocab_size), half, s) for s in seeds])
    with heavy_work(), torch.inference_mode():
        out = model(torch.as_tensor(ids), output_attentions=True, use_cache=False)
    return torch.stack(out.attentions, 1).float().numpy()


def induction_scores(model: Any, half: int = INDUCTION_HALF, seed: int = 0) -> np.ndarray:
    """Induction score of every head on one repeated random sequence: (L, H)."""
    return _induction(_probe_attentions(model, half, [seed])[0], half)


def head_roles(model: Any, half: int = INDUCTION_HALF, seeds: int = INDUCTION_SEEDS) -> HeadProfile:
    """Every head's four pattern scores on `seeds` repeated random sequences (one batched
    forward pass), averaged over the seeds; induction also keeps its lowest and highest seed."""
    a = _probe_attentions(model, half, range(seeds))  # (S, L, H, 2h, 2h)
    previous, sink, self_ = (np.mean(x, axis=0) for x in zip(*map(pattern_scores, a)))
    ind = _induction(a, half)  # (S, L, H)
    return HeadProfile(previous, sink, self_, ind.mean(0), ind.min(0), ind.max(0), seeds)


def head_profile(attentions: np.ndarray, induction: np.ndarray) -> HeadProfile:
    previous, sink, self_ = pattern_scores(attentions)
    return HeadProfile(previous, sink, self_, np.asarray(induction, dtype=np.float32))
