"""Fast mode: the same model with its linear layers in 8-bit integers (dynamic quantisation).

Every `nn.Linear` weight but the MLP output projections' is stored as int8 with one scale per
matrix; at run time each layer's whole input is rounded to int8 with one scale (so in a batch,
rows change each other's rounding), the matrix product runs in integers, and the result is
scaled back to float32. Those weights are read from memory in a quarter of the bytes, which is
what a small model's decode step on a CPU waits for. Embeddings, norms, the MLP output
projections and the KV cache stay float32 and are shared, so the copy costs only the int8
weights (`linear_weight_bytes`).

The copy shares every tensor that is not quantised with the original model (a shallow clone of
the module tree), so the original, which other learners are reading, is never touched.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from core.runtime.models import LoadedModel
from core.shared.published import count_parameters

SUFFIX = " · int8"


def _shallow_clone(module: nn.Module) -> nn.Module:
    """A new module tree whose parameters and buffers are the original's tensors."""
    twin = copy.copy(module)
    for name, value in vars(module).items():
        if isinstance(value, dict):  # _parameters, _buffers, _modules, hook dicts: own copies
            twin.__dict__[name] = type(value)(value) if type(value) is not dict else dict(value)
    for name, child in module._modules.items():
        if child is not None:
            twin._modules[name] = _shallow_clone(child)
    return twin


def int8_available() -> bool:
    """torch's eager dynamic quantisation (deprecated in favour of torchao, still in 2.13)."""
    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    return hasattr(quantization, "quantize_dynamic") and bool(
        torch.backends.quantized.supported_engines
    )


# The MLP's output projection reads the gated product, where the activation outliers of small
# LMs are largest; int8 rounds a whole input with one scale, so rounding these layers moved the
# greedy text most (measured with SmolLM2: the texts shared 2.2 tokens before parting with them
# quantised, 7.5 with them kept in float32, at 34 against 32 tokens/s). They stay float32.
KEEP_FLOAT = ("down_proj", "dense_4h_to_h", "fc2")


def quantised_names(model: nn.Module) -> set[str]:
    """The linear layers fast mode rounds to int8: all but the MLP output projections."""
    return {
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] not in KEEP_FLOAT
    }


def int8_model(model: nn.Module) -> nn.Module:
    """The model with its linear layers (but `KEEP_FLOAT`) dynamically quantised to int8."""
    twin = _shallow_clone(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the deprecation notice points users to torchao
        return torch.ao.quantization.quantize_dynamic(
            twin, quantised_names(twin), dtype=torch.qint8, inplace=True
        )


def int8_variant(lm: LoadedModel) -> LoadedModel:
    """The same model, tokenizer and config with int8 linear layers, named as such."""
    return LoadedModel(
        lm.model_id + SUFFIX,
        int8_model(lm.model),
        lm.tokenizer,
        lm.source + ", linear layers dynamically quantised to int8",
    )


def linear_share(model: nn.Module) -> float:
    """Share of the parameters in `nn.Linear` layers of their own: GPT-2's blocks use Conv1D,
    and an output head tied to the embedding is counted as the embedding."""
    embedded = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    total = count_parameters(model) or 1
    linear = sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, nn.Linear) and m.weight.data_ptr() not in embedded
    )
    return min(1.0, linear / total)


def is_int8(model: Any) -> bool:
    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


def linear_weight_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes of the float weights fast mode rounds, the same weights as int8 + one scale and
    zero point per matrix)."""
    names = quantised_names(model)
    layers = [m for n, m in model.named_modules() if n in names]
    fp = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    return fp, sum(m.weight.numel() + 16 for m in layers)
