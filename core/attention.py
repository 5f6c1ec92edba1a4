"""Attention, taken apart: one head recomputed step by step, and an encoder's attention. Heads
measured by what they do (page 09) are `core.multi_head`.

Nothing here assumes one architecture: `core.inspect.anatomy` says where each part is. Two families
are recomputed from their own modules: Llama-style (`self_attn` with q/k/v/o_proj, RMSNorm,
RoPE, grouped-query attention) and GPT-2-style (`attn` with one fused Conv1D `c_attn`,
LayerNorm, learned positions added before the first block, so no rotation inside attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import Anatomy, Geometry, require
from core.runtime.models import heavy_work

ATTENTION_CAP = 64  # tokens in attention views: T x T heatmaps stay readable and quick


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
