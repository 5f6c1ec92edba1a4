"""core/inspect/anatomy.py against the models' own configs and modules: SmolLM2, a tiny GPT-2, a tiny
Llama with grouped-query attention, a tiny Qwen3 (q/k norms, head_dim != d_model / heads), and
the families it must refuse with one UnsupportedArchitecture."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_lm, tiny_model

from core.inspect import anatomy as A
from core.runtime import models
from core.shared.published import PUBLISHED_CONFIGS, parameter_count


@pytest.fixture(scope="module")
def tiny(lm, tiny_gpt2):
    return {
        "smollm2": lm,
        "gpt2": tiny_gpt2,
        "llama": tiny_lm("llama", lm.tokenizer),
        "qwen3": tiny_lm("qwen3", lm.tokenizer),
    }


# (layers, heads, kv heads, head_dim, d_model, d_ff, family, rotary)
EXPECTED = {
    "smollm2": (30, 9, 3, 64, 576, 1536, "llama", True),
    "gpt2": (2, 4, 4, 8, 32, 128, "gpt2", False),
    "llama": (2, 4, 2, 8, 32, 64, "llama", True),
    "qwen3": (2, 4, 2, 16, 32, 64, "llama", True),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_geometry_and_parts_match_the_model(tiny, name):
    lm = tiny[name]
    a = A.require(lm.model, "decoder", "heads", "block", "mlp")
    g = a.geometry
    layers, heads, kv, head_dim, d, d_ff, family, rotary = EXPECTED[name]
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim, g.d_model, g.d_ff, g.family) == (
        layers,
        heads,
        kv,
        head_dim,
        d,
        d_ff,
        family,
    )
    assert a.n_layers == layers and a.mlp_width == d_ff
    assert (a.rotary is not None) == rotary
    assert a.head is lm.model.get_output_embeddings()
    assert a.embeddings is lm.model.get_input_embeddings()
    assert [g.kv_head(h) for h in range(heads)] == [h // (heads // kv) for h in range(heads)]
    # the output projection's input is every head side by side: heads x head_dim wide
    proj = a.output_projection(layers - 1)
    width = proj.weight.shape[1] if family == "llama" else proj.weight.shape[0]
    assert width == heads * head_dim
    assert set(a.modules_of(0)) == {"norm1", "attn", "norm2", "mlp"}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cache_bytes_per_token_equals_the_real_cache(tiny, name):
    lm = tiny[name]
    g = A.geometry(lm.config)
    with torch.inference_mode():
        out = lm.model(torch.tensor([[5, 6, 7, 8, 9]]), use_cache=True)
    real = sum(
        t.numel() * t.element_size()
        for layer in out.past_key_values.layers
        for t in (layer.keys, layer.values)
    )
    assert real == g.kv_cache_bytes(5) == 5 * g.cache_bytes_per_token(4)


def test_final_norm_is_what_the_model_applies_last(tiny):
    for lm in tiny.values():
        a = A.anatomy(lm.model)
        ids = torch.tensor([[3, 1, 4, 1, 5]])
        with torch.inference_mode():
            out = lm.model(ids, output_hidden_states=True)
            logits = a.head(out.hidden_states[-1])  # hidden_states[-1] is already normed
        torch.testing.assert_close(logits, out.logits)


def test_config_dicts_and_loaded_configs_give_the_same_geometry(lm, tiny):
    smol = next(c for c in PUBLISHED_CONFIGS if c["name"] == "SmolLM2 135M")
    from_dict, loaded = A.geometry(smol), A.geometry(lm.config)
    for field in (
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "head_dim",
        "d_model",
        "d_ff",
        "vocab",
        "context",
        "tied",
        "family",
    ):
        assert getattr(from_dict, field) == getattr(loaded, field), field
    gpt2 = A.geometry(tiny["gpt2"].config.to_dict())
    assert gpt2 == A.geometry(tiny["gpt2"].config)
    assert gpt2.position_rows == 256 and gpt2.tied
    # the parameter formula on the loaded configs counts exactly the loaded weights
    for name in ("smollm2", "gpt2", "llama"):
        model = tiny[name].model
        assert parameter_count(A.geometry(model.config)).total == sum(
            p.numel() for p in model.parameters()
        ), name


@pytest.mark.parametrize(
    "family, has",
    [
        ("gpt_neox", {"decoder", "heads_no", "block_no", "mlp"}),  # parallel attention + MLP
        ("bloom", {"decoder", "heads_no", "block_no", "mlp_no"}),  # residual added inside parts
        ("opt", {"decoder", "heads_no", "block_no", "mlp_no"}),  # MLP is fc1/fc2 on the block
    ],
)
def test_other_decoders_are_found_as_far_as_they_go(family, has):
    model = tiny_model(family, vocab_size=100)
    a = A.anatomy(model)
    assert a.n_layers == 2 and a.final_norm is not None
    for need in ("heads", "block", "mlp"):
        assert A.supports(model, need) == (need in has), need
        if need not in has:
            with pytest.raises(models.UnsupportedArchitecture):
                a.require(need)


def test_a_model_without_decoder_blocks_raises_the_one_error():
    model = tiny_model("bert", vocab_size=100)
    with pytest.raises(A.UnsupportedArchitecture, match="no stack of decoder blocks"):
        A.anatomy(model)
    assert models.UnsupportedArchitecture is A.UnsupportedArchitecture
    assert issubclass(A.UnsupportedArchitecture, ValueError)
    with pytest.raises(A.UnsupportedArchitecture):
        A.block_parts(torch.nn.Linear(2, 2))
