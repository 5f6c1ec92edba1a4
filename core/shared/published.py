"""Published model configurations and the two parameter counts: `parameter_count`, the formula
from a configuration (no weights needed), and `count_parameters`, the count of a built module's
own tensors. Every page and lesson uses these two."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.inspect.anatomy import Geometry, UnsupportedArchitecture

# ---- model sizes from configurations ---------------------------------------------------------

# Published configurations, in the keys of each model's Hugging Face config.json. GPT-3 has no
# config.json: its row is Table 2.1 of Brown et al. (2020), in GPT-2's keys (same architecture).
PUBLISHED_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "name": "GPT-2 small",
        "source": "openai-community/gpt2 config.json",
        "model_type": "gpt2",
        "n_layer": 12,
        "n_embd": 768,
        "n_head": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 medium",
        "source": "openai-community/gpt2-medium config.json",
        "model_type": "gpt2",
        "n_layer": 24,
        "n_embd": 1024,
        "n_head": 16,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 large",
        "source": "openai-community/gpt2-large config.json",
        "model_type": "gpt2",
        "n_layer": 36,
        "n_embd": 1280,
        "n_head": 20,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 XL",
        "source": "openai-community/gpt2-xl config.json",
        "model_type": "gpt2",
        "n_layer": 48,
        "n_embd": 1600,
        "n_head": 25,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-3 175B",
        "source": "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table 2.1",
        "model_type": "gpt2",
        "n_layer": 96,
        "n_embd": 12288,
        "n_head": 96,
        "n_positions": 2048,
        "vocab_size": 50257,
    },
    {
        "name": "Llama-2 7B",
        "source": "meta-llama/Llama-2-7b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-2 13B",
        "source": "meta-llama/Llama-2-13b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 40,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_attention_heads": 40,
        "num_key_value_heads": 40,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-2 70B",
        "source": "meta-llama/Llama-2-70b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 80,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-3 8B",
        "source": "meta-llama/Meta-Llama-3-8B config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
    },
    {
        "name": "SmolLM2 135M",
        "source": "HuggingFaceTB/SmolLM2-135M config.json",
        "model_type": "llama",
        "num_hidden_layers": 30,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    {
        "name": "SmolLM2 360M",
        "source": "HuggingFaceTB/SmolLM2-360M config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    {
        "name": "SmolLM2 1.7B",
        "source": "HuggingFaceTB/SmolLM2-1.7B config.json",
        "model_type": "llama",
        "num_hidden_layers": 24,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
)


@dataclass(frozen=True)
class ParameterCount:
    embeddings: int
    per_layer: int
    layers: int  # per_layer * n_layer
    final_norm: int
    lm_head: int  # 0 when tied
    total: int


def parameter_count(shape: Geometry) -> ParameterCount:
    """Count weights the way the modules hold them (biases and norm gains included), for the
    GPT-2 and Llama families; `shape` is `core.inspect.anatomy.geometry(config)` of a config.json dict
    or a loaded config."""
    if shape.family not in ("gpt2", "llama"):
        raise UnsupportedArchitecture(f"no parameter formula for the {shape.family} family")
    d, ff, head_dim = shape.d_model, shape.d_ff, shape.head_dim
    if shape.family == "gpt2":
        attn = (d * 3 * d + 3 * d) + (d * d + d)  # fused q/k/v with bias, output projection
        mlp = (d * ff + ff) + (ff * d + d)  # up, GELU, down, with biases
        norms, final = 2 * (2 * d), 2 * d  # LayerNorm: gain and bias
    else:
        kv = shape.n_kv_heads * head_dim  # grouped-query attention: fewer key/value heads
        attn = d * d + 2 * d * kv + d * d  # q, k, v, o without biases
        mlp = 3 * d * ff  # gate, up, down (SwiGLU)
        norms, final = 2 * d, d  # RMSNorm: gain only
    per_layer = attn + mlp + norms
    embeddings = shape.vocab * d + shape.position_rows * d
    head = 0 if shape.tied else shape.vocab * d
    layers = per_layer * shape.n_layers
    return ParameterCount(
        embeddings, per_layer, layers, final, head, embeddings + layers + final + head
    )


def count_parameters(module: Any, trainable: bool = False) -> int:
    """The numbers a built module holds (a tied matrix once); only trainable ones if asked."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def config_dict(hf_config: Any) -> dict[str, Any]:
    """A loaded model's own configuration as a plain dict with config.json keys."""
    return hf_config.to_dict()
