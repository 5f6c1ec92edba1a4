"""Scoped interventions on the shared model: switching attention heads off.

The model object is shared by every session of the app, so an intervention must never leak.
It goes through `core.inspect.hooks.scoped_hooks`: the hook is registered on entry and removed in
`finally`, and it acts only on forward passes made by the thread that installed it (Streamlit
runs each session's script in its own thread), so another session's forward pass that runs
meanwhile passes through unchanged. Callers take `core.runtime.models.heavy_work()` around the
forward pass, as for any other forward pass; no other lock is involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import require
from core.inspect.hooks import Hook, scoped_hooks
from core.runtime.models import heavy_work, last_only


def _switch_off(heads: tuple[int, ...], n_heads: int, head_dim: int):
    def hook(_module: Any, args: tuple) -> tuple:
        x = args[0]
        per_head = x.reshape(*x.shape[:-1], n_heads, head_dim).clone()  # (B, T, H, e)
        per_head[..., list(heads), :] = 0.0  # the head contributes nothing to o_proj's sum
        return (per_head.reshape(x.shape), *args[1:])

    return hook


@contextmanager
def heads_switched_off(model: Any, heads: Mapping[int, Iterable[int]]) -> Iterator[None]:
    """Inside the block, the given heads ({layer: [head, ...]}) output zeros in this thread."""
    chosen = {layer: tuple(sorted({int(h) for h in hs})) for layer, hs in heads.items()}
    chosen = {layer: hs for layer, hs in chosen.items() if hs}
    hooks = []
    if chosen:  # nothing to switch off needs no anatomy: any model can run the baseline
        a = require(model, "heads")
        g = a.geometry
        hooks = [
            Hook(a.output_projection(layer), "forward_pre", _switch_off(hs, g.n_heads, g.head_dim))
            for layer, hs in chosen.items()
        ]
    with scoped_hooks(*hooks):
        yield


def last_logits(
    model: Any, ids: Iterable[int], heads: Mapping[int, Iterable[int]] | None = None
) -> np.ndarray:
    """Next-token logits after `ids`, with `heads` switched off when given: (vocab,)."""
    input_ids = torch.as_tensor(list(ids))[None]
    with heavy_work(), heads_switched_off(model, heads or {}), torch.inference_mode():
        return (
            model(input_ids, use_cache=False, **last_only(model))
            .logits[0, -1]
            .float()
            .numpy()
            .copy()
        )


@dataclass(frozen=True)
class NextTokenChange:
    token_ids: tuple[int, ...]  # the union of both top-k lists, by base probability
    base: np.ndarray  # p(token) with every head on
    ablated: np.ndarray  # p(token) with the chosen heads off
    kl_bits: float  # KL(base || ablated) over the whole vocabulary, in bits
    top_changed: bool  # the most likely next token is different


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def next_token_change(
    base_logits: np.ndarray, ablated_logits: np.ndarray, k: int = 8
) -> NextTokenChange:
    p, q = (
        _softmax(np.asarray(base_logits, np.float64)),
        _softmax(np.asarray(ablated_logits, np.float64)),
    )
    ids = list(dict.fromkeys([*np.argsort(-p)[:k].tolist(), *np.argsort(-q)[:k].tolist()]))
    ids.sort(key=lambda i: -p[i])
    kl = float(np.sum(p * (np.log2(p + 1e-30) - np.log2(q + 1e-30))))
    return NextTokenChange(
        tuple(int(i) for i in ids), p[ids], q[ids], max(kl, 0.0), int(p.argmax()) != int(q.argmax())
    )
