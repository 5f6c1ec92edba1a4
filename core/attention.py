"""Attention, taken apart: one head recomputed step by step, and heads measured by what they do.

Nothing here assumes one architecture: `core.inspect.anatomy` says where each part is. Two families
are recomputed from their own modules: Llama-style (`self_attn` with q/k/v/o_proj, RMSNorm,
RoPE, grouped-query attention) and GPT-2-style (`attn` with one fused Conv1D `c_attn`,
LayerNorm, learned positions added before the first block, so no rotation inside attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import Anatomy, Geometry, require
from core.runtime.models import heavy_work

ATTENTION_CAP = 64  # tokens in attention views: T x T heatmaps stay readable and quick
INDUCTION_HALF = 16  # length of the random sequence that is repeated once for induction
INDUCTION_SEEDS = 4  # random sequences in the probe batch: one forward pass measures them all
HEAD_LABEL_THRESHOLD = 0.3  # a head is named after a pattern that takes this much attention


@dataclass(frozen=True)
class HeadSteps:
    """One head's attention, every intermediate kept. Shapes: T tokens, e = head_dim."""

    layer: int
    head: int
    kv_head: int
    x_norm: np.ndarray  # (T, d) the layer input after the block's first norm
    q: np.ndarray  # (T, e) queries, after RoPE when the model rotates
    k: np.ndarray  # (T, e) keys of this head's key/value group
    scale: float  # multiplies q.k (1/sqrt(e) unless the config says otherwise)
    scores: np.ndarray  # (T, T) q.k * scale
    masked: np.ndarray  # (T, T) scores with -inf above the diagonal
    weights: np.ndarray  # (T, T) softmax over each row
    rope: bool
    norm: str


def _rms_norm(x: torch.Tensor, norm: Any) -> torch.Tensor:
    eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight


def _layer_norm(x: torch.Tensor, norm: Any) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # RoPE turns each pair (x_i, x_{i+e/2}) by a position-dependent angle
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _llama_qk(a: Anatomy, x: torch.Tensor, layer: int, head: int, g: Geometry):
    attn = a.attention(layer)
    xn = _rms_norm(x, a.attention_norm(layer))  # (T, d)
    e, kv = g.head_dim, g.kv_head(head)
    wq, wk = (
        attn.q_proj.weight[head * e : (head + 1) * e],
        attn.k_proj.weight[kv * e : (kv + 1) * e],
    )
    q, k = xn @ wq.T, xn @ wk.T  # (T, e)
    if attn.q_proj.bias is not None:  # Qwen2-style
        q = q + attn.q_proj.bias[head * e : (head + 1) * e]
        k = k + attn.k_proj.bias[kv * e : (kv + 1) * e]
    if hasattr(attn, "q_norm"):  # Qwen3-style: each head's q and k normalised before RoPE
        q, k = _rms_norm(q, attn.q_norm), _rms_norm(k, attn.k_norm)
    cos, sin = a.rotary(x[None], torch.arange(x.shape[0])[None])
    q, k = _rotate(q, cos[0], sin[0]), _rotate(k, cos[0], sin[0])
    return xn, q, k, float(attn.scaling), True, "RMSNorm"


def _gpt2_qk(a: Anatomy, x: torch.Tensor, layer: int, head: int, g: Geometry):
    attn = a.attention(layer)
    config = attn.config
    xn = _layer_norm(x, a.attention_norm(layer))
    qkv = xn @ attn.c_attn.weight + attn.c_attn.bias  # Conv1D stores W as (in, out)
    e, d = g.head_dim, g.d_model
    q = qkv[:, head * e : (head + 1) * e]
    k = qkv[:, d + head * e : d + (head + 1) * e]
    scale = e**-0.5 if config.scale_attn_weights else 1.0
    if config.scale_attn_by_inverse_layer_idx:
        scale /= float(layer + 1)
    return xn, q, k, scale, False, "LayerNorm"


def recompute_head(model: Any, layer_input: np.ndarray, layer: int, head: int) -> HeadSteps:
    """Rebuild one head's attention from the block's input (a trace's hidden_states[layer])."""
    a = require(model, "heads")
    g = a.geometry
    x = torch.from_numpy(np.array(layer_input, dtype=np.float32))  # (T, d), a writable copy
    qk = _llama_qk if a.attention_layout == "llama" else _gpt2_qk
    with torch.inference_mode():
        xn, q, k, scale, rope, norm = qk(a, x, layer, head, g)
        scores = (q @ k.T) * scale  # (T, T)
        future = torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=1)
        masked = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(masked, dim=-1)
    return HeadSteps(
        layer,
        head,
        g.kv_head(head),
        xn.numpy(),
        q.numpy(),
        k.numpy(),
        scale,
        scores.numpy(),
        masked.numpy(),
        weights.numpy(),
        rope,
        norm,
    )


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


@dataclass(frozen=True)
class EncoderAttention:
    tokens: tuple[str, ...]
    attentions: np.ndarray  # (layers, heads, T, T) bidirectional: no mask
    truncated_from: int


def encoder_attention(encoder: Any, text: str, cap: int = ATTENTION_CAP) -> EncoderAttention:
    """MiniLM's attention for a text (with its [CLS] and [SEP]), cut to `cap` tokens."""
    tok = encoder.tokenizer
    ids = tok(text or " ", add_special_tokens=True, truncation=False)["input_ids"]
    full = len(ids)
    if full > cap:
        ids = ids[: cap - 1] + [tok.sep_token_id]
    with heavy_work(), torch.inference_mode():
        out = encoder.model(torch.tensor([ids]), output_attentions=True)
    attn = torch.stack([a[0] for a in out.attentions]).numpy()
    return EncoderAttention(tuple(tok.convert_ids_to_tokens(ids)), attn, full)
