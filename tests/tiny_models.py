"""Tiny randomly initialised causal LMs of every family the model picker can load, built in
the test (no download): a few thousand parameters each, eager attention, eval mode."""

from __future__ import annotations

from typing import Any

import torch

from core.runtime.models import LoadedModel

VOCAB = 50257  # GPT-2's: SmolLM2's 49,152 ids and the gpt2 tokenizer's all fit

# family -> (config class, model class, config keywords); every one 2 layers, d_model 32
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2": (
        "GPT2Config",
        "GPT2LMHeadModel",
        {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_positions": 256},
    ),
    "llama": (
        "LlamaConfig",
        "LlamaForCausalLM",  # grouped-query attention: 4 q heads, 2 kv
        {
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "max_position_embeddings": 256,
        },
    ),
    "qwen3": (
        "Qwen3Config",
        "Qwen3ForCausalLM",  # q/k norms, head_dim not d_model / heads
        {
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_size": 32,
            "head_dim": 16,
            "intermediate_size": 64,
            "max_position_embeddings": 256,
        },
    ),
    "gpt_neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        {
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "hidden_size": 32,
            "intermediate_size": 64,
            "max_position_embeddings": 256,
        },
    ),
    "bloom": ("BloomConfig", "BloomForCausalLM", {"n_layer": 2, "n_head": 4, "hidden_size": 32}),
    "opt": (
        "OPTConfig",
        "OPTForCausalLM",
        {
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "hidden_size": 32,
            "ffn_dim": 64,
            "word_embed_proj_dim": 32,
            "max_position_embeddings": 256,
        },
    ),
    "bert": (
        "BertConfig",
        "BertLMHeadModel",  # an encoder with an LM head: not a decoder
        {
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "hidden_size": 32,
            "intermediate_size": 64,
            "max_position_embeddings": 256,
            "is_decoder": True,
        },
    ),
}


def tiny_model(family: str, vocab_size: int = VOCAB, seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised model of `family` (a key of FAMILIES), eager attention."""
    import transformers

    config_name, model_name, keywords = FAMILIES[family]
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(vocab_size=vocab_size, **{**keywords, **overrides})
    config._attn_implementation = "eager"
    model = getattr(transformers, model_name)(config).eval()
    model.requires_grad_(False)
    return model


def tiny_lm(family: str, tokenizer: Any, **overrides: Any) -> LoadedModel:
    return LoadedModel(f"tiny-test/{family}", tiny_model(family, **overrides), tokenizer, "test")
