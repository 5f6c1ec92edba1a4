"""Page 11 (The Full Model): the logit lens against the model's own logits, the parameter
formula against transformers and published sizes, and the page through AppTest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from apptest_util import chart_data, open_page

from components.tokens import short
from core import block as core_block
from core import full_model as core_lens
from core.full_model import LENS_WINDOW
from core.inspect.anatomy import anatomy, geometry
from core.inspect.trace import run_trace
from core.runtime.models import LoadedModel
from core.shared import published

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


def _ids(m: LoadedModel, text: str = TEXT) -> torch.Tensor:
    return torch.tensor([m.tokenizer(text, add_special_tokens=False)["input_ids"]])


def _meta_count(cfg: dict) -> int:
    """Reference: instantiate the real transformers class on the meta device and count."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    keys = {k: v for k, v in cfg.items() if k not in ("name", "source", "model_type")}
    cls, conf = (
        (GPT2LMHeadModel, GPT2Config)
        if cfg["model_type"] == "gpt2"
        else (LlamaForCausalLM, LlamaConfig)
    )
    with torch.device("meta"):
        model = cls(conf(**keys))
    return sum(p.numel() for p in model.parameters())


BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"


LONG = " ".join(f"word{i} and then" for i in range(40))  # about 120+ tokens


def test_hidden_states_last_already_has_the_final_norm(any_lm):
    """Why the lens and the block page read the last block's raw output from a hook."""
    ids = _ids(any_lm)
    rs = core_lens.residual_stream(any_lm, ids)
    with torch.inference_mode():
        out = any_lm.model(ids, output_hidden_states=True)
        normed = anatomy(any_lm.model).final_norm(rs.residual[-1])
    assert torch.allclose(out.hidden_states[-1][0], normed, atol=1e-5)
    assert not torch.allclose(out.hidden_states[-1][0], rs.residual[-1], atol=1e-3)
    assert torch.equal(rs.residual[:-1], torch.stack([h[0] for h in out.hidden_states[:-1]]))


def test_last_logit_lens_layer_equals_the_models_logits(any_lm):
    lens = core_lens.logit_lens(any_lm, TEXT, start=0, window=8)
    assert lens.final_logits_error < 1e-3
    with torch.inference_mode():
        probs = any_lm.model(_ids(any_lm)).logits[0, :8].softmax(-1)
    top = probs.topk(core_lens.LENS_TOP_K, dim=-1)
    np.testing.assert_array_equal(lens.top_ids[-1], top.indices.numpy())
    np.testing.assert_allclose(lens.top_probs[-1], top.values.numpy(), rtol=1e-4, atol=1e-6)
    n = anatomy(any_lm.model).n_layers
    assert lens.top_ids.shape == (n + 1, 8, core_lens.LENS_TOP_K)
    assert lens.residual_norm.shape == (n + 1, _ids(any_lm).shape[1])


def test_lens_middle_layer_is_norm_then_head_of_that_hidden_state(lm):
    lens = core_lens.logit_lens(lm, TEXT, start=2, window=4)
    with torch.inference_mode():
        hs = lm.model(_ids(lm), output_hidden_states=True).hidden_states[10][0, 2:6]
        ref = lm.model.lm_head(lm.model.model.norm(hs)).softmax(-1).topk(5)
    np.testing.assert_array_equal(lens.top_ids[10], ref.indices.numpy())
    assert lens.window == range(2, 6)
    assert lens.actual_next[0] == lens.tokens[3]


def test_lens_window_defaults_to_the_last_tokens_and_clamps(lm):
    T = _ids(lm).shape[1]
    assert core_lens.logit_lens(lm, TEXT, window=4).window == range(T - 4, T)
    far = core_lens.logit_lens(lm, TEXT, start=10_000, window=4)
    assert far.window == range(T - 1, T) and far.actual_next == (None,)


@pytest.mark.parametrize("cfg", published.PUBLISHED_CONFIGS, ids=lambda c: c["name"])
def test_parameter_formula_matches_transformers_for_every_published_config(cfg):
    count = published.parameter_count(geometry(cfg))
    assert count.total == _meta_count(cfg)


def test_parameter_formula_matches_the_loaded_models(any_lm):
    cfg = published.config_dict(any_lm.config)
    count = published.parameter_count(geometry(cfg))
    assert count.total == sum(p.numel() for p in any_lm.model.parameters())
    mp = core_block.model_parameters(any_lm.model)
    assert (count.per_layer, count.embeddings) == (mp.per_block, mp.embeddings)


def test_published_sizes_are_the_famous_ones():
    totals = {
        c["name"]: published.parameter_count(geometry(c)).total for c in published.PUBLISHED_CONFIGS
    }
    assert round(totals["GPT-2 small"] / 1e6) == 124
    assert round(totals["GPT-3 175B"] / 1e9) == 175
    assert round(totals["Llama-2 7B"] / 1e9, 1) == 6.7


def test_full_model_lens_top_row_is_the_models_prediction(lm):
    at = open_page(FULL)
    assert not at.exception, at.exception
    at.text_area(key="sidebar.prompt").set_value(LONG).run()
    assert not at.exception
    ids = run_trace(lm, LONG).ids
    T = len(ids)
    lens = chart_data(at, "guess")
    n_layers = lm.config.num_hidden_layers
    assert sorted(lens["layer"].unique()) == list(range(n_layers + 1))
    assert sorted(lens["order"].unique()) == list(range(T - LENS_WINDOW, T))  # the last window
    with torch.inference_mode():
        top = lm.model(torch.tensor([ids.tolist()])).logits[0].argmax(-1)
    top_row = lens[lens["layer"] == n_layers].sort_values("order")
    expect = [short(lm.tokenizer.decode([int(top[p])]), 8) for p in top_row["order"]]
    assert list(top_row["guess"]) == expect
    at.slider(key="full_model.start").set_value(3).run()
    assert not at.exception
    assert sorted(chart_data(at, "guess")["order"].unique()) == list(range(3, 3 + LENS_WINDOW))
    sizes = chart_data(at, "billions")
    loaded = sizes[sizes["loaded"]]
    assert int(loaded["parameters"].iloc[0]) == sum(p.numel() for p in lm.model.parameters())
    assert {"GPT-2 small", "GPT-3 175B", "Llama-2 70B", "Llama-3 8B"} <= set(sizes["model"])
