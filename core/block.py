"""One transformer block taken apart on the model's own modules, and put back together.

A pre-norm decoder block is  x -> norm1 -> attention -> +x -> norm2 -> MLP -> +  . Llama calls the
parts input_layernorm / self_attn / post_attention_layernorm / mlp, GPT-2 calls them ln_1 / attn /
ln_2 / mlp; both are found by name on the loaded model, nothing is assumed about one family.
Sub-module outputs are read with forward hooks that live only inside `capture_outputs`, which is
entered while holding `heavy_work()` (no other forward runs on the shared model meanwhile) and
which removes every hook in `finally`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.models import LoadedModel, UnsupportedArchitecture, heavy_work
from core.trace import TRACE_TOKEN_CAP, prompt_tokens, token_strings

# Candidate attribute names, Llama-style first, then GPT-2, GPT-NeoX/Pythia, Falcon/Phi style.
_BASE = ("model", "transformer", "gpt_neox")
_LAYERS = ("layers", "h", "blocks")
_FINAL_NORM = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f")
_NORM1 = ("input_layernorm", "ln_1", "attention_norm", "ln_attn")
_ATTN = ("self_attn", "attn", "attention", "self_attention")
_NORM2 = ("post_attention_layernorm", "ln_2", "ffn_norm", "ln_mlp")
_MLP = ("mlp", "feed_forward", "ffn")

ROLES = ("norm1", "attn", "norm2", "mlp")

STAGES: tuple[str, ...] = (
    "block input x",
    "norm 1",
    "attention update a",
    "x + a",
    "norm 2",
    "MLP update m",
    "block output x + a + m",
)


def _first_attr(obj: Any, names: tuple[str, ...]) -> tuple[str, Any] | None:
    for name in names:
        child = getattr(obj, name, None)
        if child is not None:
            return name, child
    return None


def base_model(model: Any) -> Any:
    found = _first_attr(model, _BASE)
    if found is None:
        raise UnsupportedArchitecture(f"{type(model).__name__}: no inner model found")
    return found[1]


def decoder_layers(model: Any) -> list[Any]:
    """The stack of blocks: `model.layers` (Llama), `transformer.h` (GPT-2), ..."""
    found = _first_attr(base_model(model), _LAYERS)
    if found is None:
        raise UnsupportedArchitecture(f"{type(model).__name__}: no list of blocks found")
    return list(found[1])


def final_norm(model: Any) -> Any:
    found = _first_attr(base_model(model), _FINAL_NORM)
    if found is None:
        raise UnsupportedArchitecture(f"{type(model).__name__}: no final norm found")
    return found[1]


@dataclass(frozen=True)
class BlockParts:
    """Attribute names of a block's four parts, as the model itself names them."""

    norm1: str
    attn: str
    norm2: str
    mlp: str

    def names(self) -> tuple[str, str, str, str]:
        return (self.norm1, self.attn, self.norm2, self.mlp)


def block_parts(block: Any) -> BlockParts:
    found = [_first_attr(block, names) for names in (_NORM1, _ATTN, _NORM2, _MLP)]
    if any(f is None for f in found):
        raise UnsupportedArchitecture(
            f"{type(block).__name__} is not a sequential pre-norm block (norm, attention, "
            "norm, MLP); this page cannot take it apart."
        )
    if getattr(getattr(block, "config", None), "use_parallel_residual", False):
        raise UnsupportedArchitecture(f"{type(block).__name__} adds attention and MLP in parallel")
    return BlockParts(*(f[0] for f in found))  # type: ignore[index]


def _first_tensor(output: Any) -> torch.Tensor:
    # attention modules return (output, weights); blocks of older transformers return tuples
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def capture_outputs(modules: Mapping[str, Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each module's output under its key while inside the block; hooks removed after.

    Hooks record only calls made from the thread that entered, so a forward pass run by another
    session at the same time can neither leak into this capture nor be changed by it.
    """
    owner = threading.get_ident()
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(key: str):
        def hook(_module, _inputs, output):
            if threading.get_ident() == owner:
                captured[key] = _first_tensor(output).detach()

        return hook

    try:
        for key, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(key)))
        yield captured
    finally:
        for h in handles:
            h.remove()


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
    layers = decoder_layers(model)
    modules: dict[str, Any] = {}
    for i, block in enumerate(layers):
        for role, name in zip(ROLES, block_parts(block).names(), strict=True):
            modules[f"{i}.{role}"] = getattr(block, name)
        modules[f"{i}.out"] = block
    with heavy_work(), torch.inference_mode(), capture_outputs(modules) as got:
        out = model(input_ids, output_hidden_states=True)
    hidden = tuple(h[0] for h in out.hidden_states)  # layers+1 tensors (T, d)
    return hidden, {k: v[0] for k, v in got.items()}


def rebuild_block(block: Any, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """x + a + MLP(norm2(x + a)), with the block's own norm2 and MLP modules."""
    parts = block_parts(block)
    mid = x + attn_out
    with torch.inference_mode():
        return mid + getattr(block, parts.mlp)(getattr(block, parts.norm2)(mid))


def block_anatomy(lm: LoadedModel, text: str, cap: int = TRACE_TOKEN_CAP) -> BlockAnatomy:
    pt = prompt_tokens(lm.tokenizer, text, cap)
    hidden, got = run_block_capture(lm, torch.tensor([pt.ids]))
    layers = decoder_layers(lm.model)
    norm_f = final_norm(lm.model)
    rms, mean, std, mx, au, mu, err = [], [], [], [], [], [], []
    for i, block in enumerate(layers):
        x, a, m = hidden[i], got[f"{i}.attn"], got[f"{i}.mlp"]
        stages = (x, got[f"{i}.norm1"], a, x + a, got[f"{i}.norm2"], m, got[f"{i}.out"])
        rms.append(torch.stack([_rms(s) for s in stages]))
        mean.append(torch.stack([s.mean() for s in stages]))
        std.append(torch.stack([s.std() for s in stages]))
        mx.append(torch.stack([s.abs().max() for s in stages]))
        au.append(a.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12))
        mu.append(m.norm(dim=-1) / (x + a).norm(dim=-1).clamp_min(1e-12))
        rebuilt = rebuild_block(block, x, a)
        if i == len(layers) - 1:  # hidden_states[-1] already has the final norm applied
            with torch.inference_mode():
                rebuilt = norm_f(rebuilt)
        err.append((rebuilt - hidden[i + 1]).abs().max())
    b0 = layers[0]
    parts = block_parts(b0)
    return BlockAnatomy(
        tokens=token_strings(lm.tokenizer, pt.ids),
        block_class=type(b0).__name__,
        part_names=parts.names(),
        part_classes=tuple(type(getattr(b0, n)).__name__ for n in parts.names()),  # type: ignore[arg-type]
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
    layers = decoder_layers(model)
    norm = final_norm(model)
    head = model.get_output_embeddings().weight
    inside = {id(p) for b in layers for p in b.parameters()} | {id(p) for p in norm.parameters()}
    tied = any(head is p for p in model.get_input_embeddings().parameters())
    embeddings = sum(
        p.numel() for p in base_model(model).parameters() if id(p) not in inside
    )
    return ModelParameters(
        embeddings=embeddings,
        per_block=sum(p.numel() for p in layers[0].parameters()),
        n_blocks=len(layers),
        final_norm=sum(p.numel() for p in norm.parameters()),
        lm_head=0 if tied else head.numel(),
        tied=tied,
        total=sum(p.numel() for p in model.parameters()),
    )
