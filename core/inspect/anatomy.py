"""The one place that knows a model's anatomy: where its blocks, attention, MLP, norms,
embeddings and head are, and its geometry (layers, heads, widths, vocabulary, context, cache).

Every page and core function asks here instead of guessing attribute names. Two families are
taken apart completely:

- "llama": `model.layers[i]` with input_layernorm / self_attn (q/k/v/o_proj, RoPE, optional
  grouped-query attention and Qwen3-style q/k norms) / post_attention_layernorm / gated MLP
  (gate_proj, up_proj, down_proj), RMSNorm; SmolLM2, Llama, Mistral, Qwen2/3.
- "gpt2": `transformer.h[i]` with ln_1 / attn (one fused Conv1D c_attn, c_proj) / ln_2 / MLP
  (c_fc, c_proj), LayerNorm, learned positions added before the first block.

Other decoders (GPT-NeoX, BLOOM, OPT, ...) are found as far as they go: their blocks, final
norm and head, and whatever parts have a known layout. A page that needs a part a model lacks
gets one `UnsupportedArchitecture` with a sentence it can show.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Where the stack of blocks lives, tried in order.
_BLOCK_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")
_FINAL_NORM = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f")
_NORM1 = ("input_layernorm", "ln_1", "attention_norm", "ln_attn")
_ATTN = ("self_attn", "attn", "attention", "self_attention")
_NORM2 = ("post_attention_layernorm", "ln_2", "ffn_norm", "ln_mlp")
_MLP = ("mlp", "feed_forward", "ffn")
LLAMA_TYPES = ("llama", "mistral", "qwen2", "qwen3", "smollm3")

ROLES = ("norm1", "attn", "norm2", "mlp")  # a sequential pre-norm block's four parts, in order


class UnsupportedArchitecture(ValueError):
    """A model whose layout a page cannot take apart (pages show it as a warning)."""


# ---- geometry -----------------------------------------------------------------------------


def _read(config: Any, *names: str) -> Any:
    """The first of `names` a config (object or config.json dict) sets, else None."""
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is not None:
            return value
    return None


@dataclass(frozen=True)
class Geometry:
    """The numbers that size a decoder, read from its config (never assumed)."""

    family: str  # "llama", "gpt2", or the config's model_type for other decoders
    n_layers: int
    n_heads: int  # query heads
    n_kv_heads: int  # fewer than n_heads with grouped-query attention (SmolLM2, Llama 3)
    head_dim: int
    d_model: int
    d_ff: int  # MLP width (neurons per block)
    vocab: int
    context: int  # longest sequence the config allows; 0 when it sets none (ALiBi models)
    position_rows: int  # learned position embeddings (GPT-2); 0 for rotary or ALiBi
    tied: bool  # output head shares the token embedding matrix

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def kv_head(self, head: int) -> int:
        return head // self.group_size

    def cache_bytes_per_token(self, dtype_bytes: int = 4) -> int:
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * dtype_bytes  # K and V

    def kv_cache_bytes(self, tokens: int, dtype_bytes: int = 4, batch: int = 1) -> int:
        return self.cache_bytes_per_token(dtype_bytes) * int(tokens) * int(batch)


def _family(model_type: str) -> str:
    return "llama" if model_type in LLAMA_TYPES else model_type


def geometry(config: Any) -> Geometry:
    """Geometry of a transformers config object or a config.json dict (GPT-2 or Llama keys)."""
    model_type = str(_read(config, "model_type") or "")
    heads = _read(config, "num_attention_heads", "n_head")
    d_model = _read(config, "hidden_size", "n_embd", "d_model")
    layers = _read(config, "num_hidden_layers", "n_layer", "num_layers")
    if heads is None or d_model is None or layers is None:
        raise UnsupportedArchitecture(
            f"a {model_type or 'model'} config without layer, head and width sizes"
        )
    heads, d_model = int(heads), int(d_model)
    kv = _read(config, "num_key_value_heads") or (1 if _read(config, "multi_query") else heads)
    family = _family(model_type)
    context = _read(config, "max_position_embeddings", "n_positions", "n_ctx", "seq_length")
    tied = _read(config, "tie_word_embeddings")  # unset: Llama's default is untied, GPT-2's tied
    return Geometry(
        family=family,
        n_layers=int(layers),
        n_heads=heads,
        n_kv_heads=int(kv),
        head_dim=int(_read(config, "head_dim") or d_model // heads),
        d_model=d_model,
        d_ff=int(_read(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * d_model),
        vocab=int(_read(config, "vocab_size") or 0),
        context=int(context or 0),
        position_rows=int(context or 0) if family == "gpt2" else 0,
        tied=bool(family != "llama" if tied is None else tied),
    )


# ---- modules ------------------------------------------------------------------------------


def _path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _first_attr(obj: Any, names: tuple[str, ...]) -> tuple[str, Any] | None:
    for name in names:
        child = getattr(obj, name, None)
        if child is not None:
            return name, child
    return None


@dataclass(frozen=True)
class BlockParts:
    """Attribute names of a sequential pre-norm block's parts, as the model names them."""

    norm1: str
    attn: str
    norm2: str
    mlp: str

    def names(self) -> tuple[str, str, str, str]:
        return (self.norm1, self.attn, self.norm2, self.mlp)


@dataclass(frozen=True)
class MlpParts:
    mlp: Any
    kind: str  # "gated" (Llama, SwiGLU) or "plain" (GPT-2, GPT-NeoX)
    up: Any  # the projection whose output goes through the activation (gate_proj or c_fc)
    gate_mul: Any | None  # up_proj for gated MLPs
    down: Any  # the output projection; its input is the neuron activations
    act: Any


def _takes_residual(module: Any) -> bool:
    # BLOOM's attention and MLP add the residual themselves: their outputs are not updates
    return "residual" in inspect.signature(module.forward).parameters


def block_parts(block: Any) -> BlockParts:
    """norm1 -> attention -> +x -> norm2 -> MLP -> + , found by name; anything else raises."""
    found = [_first_attr(block, names) for names in (_NORM1, _ATTN, _NORM2, _MLP)]
    if any(f is None for f in found):
        raise UnsupportedArchitecture(
            f"{type(block).__name__} is not a sequential pre-norm block (norm, attention, "
            "norm, MLP), so this page cannot take it apart."
        )
    parallel = getattr(block, "use_parallel_residual", None)  # GPT-NeoX keeps it on the block
    if parallel is None:
        parallel = getattr(getattr(block, "config", None), "use_parallel_residual", False)
    if parallel:
        raise UnsupportedArchitecture(
            f"{type(block).__name__} adds attention and MLP in "
            "parallel, so this page cannot take it apart."
        )
    if any(_takes_residual(f[1]) for f in found[1::2]):  # type: ignore[index]
        raise UnsupportedArchitecture(
            f"{type(block).__name__} adds the residual inside its "
            "attention and MLP, so this page cannot take it apart."
        )
    return BlockParts(*(f[0] for f in found))  # type: ignore[index]


def _mlp_parts(block: Any) -> MlpParts | None:
    mlp = getattr(block, "mlp", None)
    if mlp is None or _takes_residual(mlp):
        return None
    if hasattr(mlp, "gate_proj"):
        return MlpParts(mlp, "gated", mlp.gate_proj, mlp.up_proj, mlp.down_proj, mlp.act_fn)
    if hasattr(mlp, "c_fc") and hasattr(mlp, "act"):
        return MlpParts(mlp, "plain", mlp.c_fc, None, mlp.c_proj, mlp.act)
    if hasattr(mlp, "dense_h_to_4h") and hasattr(mlp, "act"):
        return MlpParts(mlp, "plain", mlp.dense_h_to_4h, None, mlp.dense_4h_to_h, mlp.act)
    return None


def _attention_layout(model: Any, blocks: tuple[Any, ...]) -> str | None:
    """'llama' or 'gpt2' when each head's q and k can be recomputed by hand, else None."""
    attn = getattr(blocks[0], "self_attn", None)
    inner = getattr(model, "model", None)
    if (
        attn is not None
        and all(hasattr(attn, p) for p in ("q_proj", "k_proj", "o_proj"))
        and hasattr(inner, "rotary_emb")
        and hasattr(blocks[0], "input_layernorm")
    ):
        return "llama"
    attn = getattr(blocks[0], "attn", None)
    if attn is not None and hasattr(attn, "c_attn") and hasattr(blocks[0], "ln_1"):
        return "gpt2"
    return None


@dataclass(frozen=True)
class Anatomy:
    """A decoder's parts. Modules are the shared model's own: read them, never change them."""

    model_class: str
    base: Any  # the module holding the blocks and the final norm (model.model, transformer)
    blocks: tuple[Any, ...]
    final_norm: Any
    embeddings: Any  # the token embedding module
    head: Any  # the output projection to the vocabulary (lm_head)
    geometry: Geometry
    attention_layout: str | None  # "llama", "gpt2", or None when heads cannot be recomputed
    parts: BlockParts | None  # None when the block is not sequential pre-norm
    parts_reason: str  # why `parts` is None
    mlp_kind: str | None  # "gated", "plain", or None when the MLP layout is unknown

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def require(self, *needs: str) -> Anatomy:
        """Raise UnsupportedArchitecture unless the model has each of `needs`:
        "decoder" (blocks, final norm and head: every Anatomy has them), "heads"
        (recomputable attention heads and their output projection), "block" (a sequential
        pre-norm block), "mlp" (a known MLP layout)."""
        for need in needs:
            if need == "heads" and self.attention_layout is None:
                raise UnsupportedArchitecture(
                    f"{self.model_class}: this page recomputes attention heads for Llama-style "
                    "and GPT-2-style models only."
                )
            if need == "block" and self.parts is None:
                raise UnsupportedArchitecture(self.parts_reason)
            if need == "mlp" and self.mlp_kind is None:
                raise UnsupportedArchitecture(
                    f"{self.model_class}: this page reads MLP neurons of Llama-, GPT-2- and "
                    "GPT-NeoX-style MLPs only."
                )
            if need not in ("decoder", "heads", "block", "mlp"):
                raise ValueError(f"unknown need {need!r}")
        return self

    def attention(self, layer: int) -> Any:
        self.require("heads")
        block = self.blocks[layer]
        return block.self_attn if self.attention_layout == "llama" else block.attn

    def output_projection(self, layer: int) -> Any:
        """The module whose input is the heads' outputs side by side: o_proj or attn.c_proj."""
        attn = self.attention(layer)
        return attn.o_proj if self.attention_layout == "llama" else attn.c_proj

    def attention_norm(self, layer: int) -> Any:
        """The norm applied to the block's input before attention."""
        block = self.blocks[layer]
        return block.input_layernorm if self.attention_layout == "llama" else block.ln_1

    def mlp(self, layer: int) -> MlpParts:
        self.require("mlp")
        parts = _mlp_parts(self.blocks[layer])
        assert parts is not None  # every block has the layout of block 0
        return parts

    @property
    def mlp_width(self) -> int:
        """Neurons per MLP layer, read from the model's own weights."""
        down = self.mlp(0).down
        w = down.weight  # nn.Linear: (d, d_ff); GPT-2 Conv1D: (d_ff, d)
        return int(w.shape[0] if type(down).__name__ == "Conv1D" else w.shape[1])

    @property
    def rotary(self) -> Any:
        """The rotary position embedding module of Llama-style models (None for GPT-2)."""
        return getattr(self.base, "rotary_emb", None)

    def modules_of(self, layer: int) -> dict[str, Any]:
        """A sequential block's parts by role: norm1, attn, norm2, mlp."""
        self.require("block")
        block = self.blocks[layer]
        return {
            role: getattr(block, name) for role, name in zip(ROLES, self.parts.names(), strict=True)
        }  # type: ignore[union-attr]


def anatomy(model: Any) -> Anatomy:
    """The model's parts; UnsupportedArchitecture when it is not a decoder this app can read
    (no stack of blocks, no final norm, or no output head)."""
    blocks = _blocks_of(model)
    if not blocks:
        raise UnsupportedArchitecture(f"{type(model).__name__} has no stack of decoder blocks.")
    holder = _path(model, _BLOCK_PATHS[_block_path_index(model)].rsplit(".", 1)[0])
    norm = _first_attr(holder, _FINAL_NORM)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if norm is None or head is None:
        raise UnsupportedArchitecture(
            f"{type(model).__name__}: no final norm or output head found."
        )
    try:
        parts, reason = block_parts(blocks[0]), ""
    except UnsupportedArchitecture as exc:
        parts, reason = None, str(exc)
    mlp = _mlp_parts(blocks[0])
    return Anatomy(
        model_class=type(model).__name__,
        base=holder,
        blocks=blocks,
        final_norm=norm[1],
        embeddings=model.get_input_embeddings(),
        head=head,
        geometry=geometry(model.config),
        attention_layout=_attention_layout(model, blocks),
        parts=parts,
        parts_reason=reason,
        mlp_kind=None if mlp is None else mlp.kind,
    )


def _block_path_index(model: Any) -> int:
    for i, path in enumerate(_BLOCK_PATHS):
        if _path(model, path) is not None:
            return i
    return -1


def _blocks_of(model: Any) -> tuple[Any, ...]:
    i = _block_path_index(model)
    return tuple(_path(model, _BLOCK_PATHS[i])) if i >= 0 else ()


def attention_modules(model: Any) -> tuple[Any, ...]:
    """Each block's attention module (self_attn, attn, ...), or () when a block has none."""
    found = [_first_attr(block, _ATTN) for block in _blocks_of(model)]
    return tuple(f[1] for f in found) if found and all(found) else ()


def require(model: Any, *needs: str) -> Anatomy:
    """`anatomy(model).require(*needs)`: the one check a page makes before taking a model apart."""
    return anatomy(model).require(*needs)


def supports(model: Any, *needs: str) -> bool:
    try:
        require(model, *needs)
    except UnsupportedArchitecture:
        return False
    return True
