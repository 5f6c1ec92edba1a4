"""Scoped interventions on the shared model: switching attention heads off.

The model object is shared by every session of the app, so an intervention must never leak:

1. Scope. Hooks are registered on entry and removed in `finally`, whatever happens inside.
2. Isolation. Each hook remembers the thread that installed it and does nothing in any other
   thread. Streamlit runs each session's script in its own thread, so an ordinary forward pass
   from another session that happens to run while a hook is installed passes through it
   unchanged, even if it does not queue behind us.
3. Exclusion. `INTERVENTION_LOCK` (re-entrant) is held for the whole intervened forward pass,
   so two interventions never overlap. Callers take `core.models.heavy_work()` first and this
   lock second (always in that order, so the two cannot deadlock); `heavy_work` may also take
   this lock itself, which is why it is an RLock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.attention import head_geometry, output_projection
from core.models import heavy_work

INTERVENTION_LOCK = threading.RLock()


def _switch_off_hook(owner: int, heads: tuple[int, ...], n_heads: int, head_dim: int):
    def hook(module: Any, args: tuple) -> tuple | None:
        if threading.get_ident() != owner:
            return None  # another session's forward pass: leave it alone
        x = args[0]
        per_head = x.reshape(*x.shape[:-1], n_heads, head_dim).clone()  # (B, T, H, e)
        per_head[..., list(heads), :] = 0.0  # the head contributes nothing to o_proj's sum
        return (per_head.reshape(x.shape), *args[1:])

    return hook


@contextmanager
def heads_switched_off(model: Any, heads: Mapping[int, Iterable[int]]) -> Iterator[None]:
    """Inside the block, the given heads ({layer: [head, ...]}) output zeros in this thread."""
    g = head_geometry(model.config)
    with INTERVENTION_LOCK:
        handles = []
        try:
            owner = threading.get_ident()
            for layer, hs in heads.items():
                hs = tuple(sorted({int(h) for h in hs}))
                if not hs:
                    continue
                hook = _switch_off_hook(owner, hs, g.n_heads, g.head_dim)
                handles.append(output_projection(model, layer).register_forward_pre_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()


def last_logits(model: Any, ids: Iterable[int], heads: Mapping[int, Iterable[int]] | None = None
                ) -> np.ndarray:
    """Next-token logits after `ids`, with `heads` switched off when given: (vocab,)."""
    input_ids = torch.as_tensor(list(ids))[None]
    with heavy_work(), heads_switched_off(model, heads or {}), torch.inference_mode():
        return model(input_ids).logits[0, -1].float().numpy().copy()


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


def next_token_change(base_logits: np.ndarray, ablated_logits: np.ndarray, k: int = 8
                      ) -> NextTokenChange:
    p, q = _softmax(np.asarray(base_logits, np.float64)), _softmax(np.asarray(ablated_logits,
                                                                               np.float64))
    ids = list(dict.fromkeys([*np.argsort(-p)[:k].tolist(), *np.argsort(-q)[:k].tolist()]))
    ids.sort(key=lambda i: -p[i])
    kl = float(np.sum(p * (np.log2(p + 1e-30) - np.log2(q + 1e-30))))
    return NextTokenChange(tuple(int(i) for i in ids), p[ids], q[ids], max(kl, 0.0),
                           int(p.argmax()) != int(q.argmax()))
