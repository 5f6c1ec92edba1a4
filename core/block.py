"""One transformer block taken apart on the model's own modules, and put back together.

A pre-norm decoder block is  x -> norm1 -> attention -> +x -> norm2 -> MLP -> +  . Llama calls the
parts input_layernorm / self_attn / post_attention_layernorm / mlp, GPT-2 calls them ln_1 / attn /
ln_2 / mlp; `core.inspect.anatomy` finds them by name on the loaded model. Sub-module outputs are
read with `core.inspect.hooks.capture_outputs` (this thread's forward pass only, removed in `finally`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import anatomy, require
from core.inspect.hooks import capture_outputs
from core.inspect.trace import TRACE_TOKEN_CAP, prompt_tokens, token_strings
from core.runtime.models import LoadedModel, heavy_work
from core.shared.published import count_parameters

STAGES: tuple[str, ...] = (
    "block input x",
    "norm 1",
    "attention update a",
    "x + a",
    "norm 2",
    "MLP update m",
    "block output x + a + m",
)


@dataclass(frozen=True)
class BlockAnatomy:
    """Statistics of every stage of every block for one prompt."""

    tokens: tuple[str, ...]
    block_class: str
    part_names: tuple[str, str, str, str]  # norm1, attention, norm2, MLP attribute names
    part_classes: tuple[str, str, str, str]
    token_rms: np.ndarray  # (layers, stages, T) root-mean-square of each token's vector
    stage_mean: np.ndarray  # (layers, stages) over tokens and dimensions
    stage_std: np.ndarray  # (layers, stages)
    stage_max_abs: np.ndarray  # (layers, stages)
    attn_update: np.ndarray  # (layers, T) ||a|| / ||x||: how much attention moves the stream
    mlp_update: np.ndarray  # (layers, T) ||m|| / ||x + a||
    rebuild_error: np.ndarray  # (layers,) max |rebuilt - model's next hidden state|
    truncated_from: int

    @property
    def n_layers(self) -> int:
        return int(self.token_rms.shape[0])


def _rms(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).mean(-1).sqrt()  # (T,)


def run_block_capture(
    lm: LoadedModel, input_ids: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """One forward pass: hidden states plus every block's norm/attention/MLP/output tensors."""
    model = lm.model
    a = require(model, "block")
    modules: dict[str, Any] = {}
    for i, block in enumerate(a.blocks):
        for role, module in a.modules_of(i).items():
            modules[f"{i}.{role}"] = module
        modules[f"{i}.out"] = block
    with heavy_work(), torch.inference_mode(), capture_outputs(modules) as got:
        out = model(input_ids, output_hidden_states=True, use_cache=False)
    hidden = tuple(h[0] for h in out.hidden_states)  # layers+1 tensors (T, d)
    return hidden, {k: v[0] for k, v in got.items()}


def rebuild_block(model: Any, layer: int, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """x + a + MLP(norm2(x + a)), with the block's own norm2 and MLP modules."""
    parts = require(model, "block").modules_of(layer)
    mid = x + attn_out
    with torch.inference_mode():
        return mid + parts["mlp"](parts["norm2"](mid))


def block_anatomy(lm: LoadedModel, text: str, cap: int = TRACE_TOKEN_CAP) -> BlockAnatomy:
    pt = prompt_tokens(lm.tokenizer, text, cap)
    hidden, got = run_block_capture(lm, torch.tensor([pt.ids]))
    anat = require(lm.model, "block")
    layers, norm_f = anat.blocks, anat.final_norm
    rms, mean, std, mx, au, mu, err = [], [], [], [], [], [], []
    for i in range(len(layers)):
        x, a, m = hidden[i], got[f"{i}.attn"], got[f"{i}.mlp"]
        stages = (x, got[f"{i}.norm1"], a, x + a, got[f"{i}.norm2"], m, got[f"{i}.out"])
        rms.append(torch.stack([_rms(s) for s in stages]))
        mean.append(torch.stack([s.mean() for s in stages]))
        std.append(torch.stack([s.std() for s in stages]))
        mx.append(torch.stack([s.abs().max() for s in stages]))
        au.append(a.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12))
        mu.append(m.norm(dim=-1) / (x + a).norm(dim=-1).clamp_min(1e-12))
        rebuilt = rebuild_block(lm.model, i, x, a)
        if i == len(layers) - 1:  # hidden_states[-1] already has the final norm applied
            with torch.inference_mode():
                rebuilt = norm_f(rebuilt)
        err.append((rebuilt - hidden[i + 1]).abs().max())
    names = anat.parts.names()  # type: ignore[union-attr]
    return BlockAnatomy(
        tokens=token_strings(lm.tokenizer, pt.ids),
        block_class=type(layers[0]).__name__,
        part_names=names,
        part_classes=tuple(type(m).__name__ for m in anat.modules_of(0).values()),  # type: ignore[arg-type]
        token_rms=torch.stack(rms).numpy(),
        stage_mean=torch.stack(mean).numpy(),
        stage_std=torch.stack(std).numpy(),
        stage_max_abs=torch.stack(mx).numpy(),
        attn_update=torch.stack(au).numpy(),
        mlp_update=torch.stack(mu).numpy(),
        rebuild_error=torch.stack(err).numpy(),
        truncated_from=pt.truncated_from,
    )


@dataclass(frozen=True)
class ParamRow:
    part: str  # "input_layernorm", "self_attn", ...
    tensor: str  # "self_attn.q_proj.weight"
    shape: tuple[int, ...]
    count: int


def block_parameters(block: Any) -> tuple[ParamRow, ...]:
    """Every parameter tensor of one block, grouped by the block's top-level part."""
    return tuple(
        ParamRow(name.split(".")[0], name, tuple(p.shape), p.numel())
        for name, p in block.named_parameters()
    )


@dataclass(frozen=True)
class ModelParameters:
    """Where a model's parameters live; `total` counts tied weights once, like the model."""

    embeddings: int  # token (and learned position) embeddings
    per_block: int
    n_blocks: int
    final_norm: int
    lm_head: int  # 0 when tied to the token embeddings
    tied: bool
    total: int


def model_parameters(model: Any) -> ModelParameters:
    a = anatomy(model)
    layers, norm, head = a.blocks, a.final_norm, a.head.weight
    inside = {id(p) for b in layers for p in b.parameters()} | {id(p) for p in norm.parameters()}
    tied = any(head is p for p in a.embeddings.parameters())
    embeddings = sum(p.numel() for p in a.base.parameters() if id(p) not in inside)
    return ModelParameters(
        embeddings=embeddings,
        per_block=count_parameters(layers[0]),
        n_blocks=len(layers),
        final_norm=count_parameters(norm),
        lm_head=0 if tied else head.numel(),
        tied=tied,
        total=count_parameters(model),
    )
