"""AppTest tests of pages 10-12 on the real embedded model, and on a tiny GPT-2 from a folder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from apptest_util import chart_data, chart_specs, open_page

from components.tokens import short
from core.block import block_anatomy
from core.full_model import LENS_WINDOW
from core.inspect.trace import run_trace

BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"
LONG = " ".join(f"word{i} and then" for i in range(40))  # about 120+ tokens


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _dot(at) -> str:
    return at.get("graphviz_chart")[0].proto.spec


def test_block_page_follows_the_layer_slider(lm):
    at = open_page(BLOCK)
    assert not at.exception, at.exception
    assert "input_layernorm (LlamaRMSNorm)" in _dot(at) and "mlp (LlamaMLP)" in _dot(at)
    at.slider(key="block.layer").set_value(7).run()
    assert not at.exception
    assert "into block 7" in _dot(at) and "to block 8" in _dot(at)
    ref = block_anatomy(lm, at.session_state["shared.prompt"])
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["mean RMS"], ref.token_rms[7].mean(axis=1), rtol=1e-4)
    assert float(_metric(at, "attention |a| / |x|")) == pytest.approx(
        ref.attn_update[7].mean(), abs=0.006
    )
    assert float(_metric(at, "rebuilt vs model")) < 1e-4
    rule = chart_data(at, "layer", exact=True)
    assert int(rule["layer"].iloc[0]) == 7
    total = sum(p.numel() for p in lm.model.parameters())
    assert f"{total:,}" in " ".join(m.value for m in at.markdown)


def test_block_page_handles_bad_prompts():
    at = open_page(BLOCK)
    at.text_area(key="sidebar.prompt").set_value("   ").run()
    assert not at.exception
    assert any("empty" in i.value for i in at.info)
    at.text_area(key="sidebar.prompt").set_value(
        "<script>$x$</script> 🙂 中文 שלום\u200b" * 600
    ).run()
    assert not at.exception
    assert any("first 256" in i.value for i in at.info)


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


def test_objective_page_loss_equals_the_models_loss(lm):
    at = open_page(OBJ)
    assert not at.exception, at.exception
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    at.text_area(key="lm_objective.text").set_value(text).run()
    assert not at.exception
    ids = torch.tensor([run_trace(lm, text).ids.tolist()])
    with torch.inference_mode():
        loss = float(lm.model(ids, labels=ids).loss)
    assert float(_metric(at, "loss (mean surprisal)").split()[0]) == pytest.approx(loss, abs=6e-4)
    assert float(_metric(at, "perplexity").replace(",", "")) == pytest.approx(
        math.exp(loss), abs=0.06
    )  # shown with one decimal
    grid = chart_data(at, "bits")
    assert len(grid) == ids.shape[1]  # every token has its cell, the first one too
    assert np.isnan(grid["bits"].iloc[0]) and grid["bits"].iloc[1:].notna().all()
    worst = int(grid.loc[grid["bits"].idxmax(), "position"])
    # text colour from the same scale as the fill: the most surprising (darkest) cell is white
    assert grid.loc[grid["bits"].idxmax(), "ink"] == "#ffffff"
    assert grid.loc[grid["bits"].idxmin(), "ink"] != "#ffffff"
    assert any(f"Position {worst}." in m.value for m in at.markdown)  # picked to start
    spec = next(
        s for s in chart_specs(at) if "picked" in str(s.get("params", "")) or "picked" in str(s)
    )
    assert f'"position": {worst}' in str(spec).replace("'", '"')
    at.text_area(key="lm_objective.text").set_value("  ").run()
    assert not at.exception and any("empty" in i.value for i in at.info)


def test_guessing_game_keeps_score(lm):
    from core.lm_objective import GAME_TEXTS

    at = open_page(OBJ)
    at.selectbox(key="lm_objective.game_text").set_value("Capitals").run()
    assert not at.exception
    trace = run_trace(lm, GAME_TEXTS[1])
    start = 4  # new_game's default
    left = int(_metric(at, "tokens left"))
    assert left == trace.length - start
    at.text_input(key="lm_objective.guess").input(trace.tokens[start].strip())
    at.button(key="lm_objective.submit").click().run()
    assert not at.exception
    assert _metric(at, "you") == "1 / 1"
    model_right = int(trace.top_ids[start - 1, 0]) == int(trace.ids[start])
    assert _metric(at, "the model") == f"{int(model_right)} / 1"
    at.text_input(key="lm_objective.guess").input("zzzz-not-a-token")
    at.button(key="lm_objective.submit").click().run()
    assert _metric(at, "you") == "1 / 2" and int(_metric(at, "tokens left")) == left - 2
    # tokens in the feedback are quoted: a lone "," is a token, not the sentence's comma
    from components.tokens import visible

    feedback = next(m.value for m in at.markdown if "you typed" in m.value)
    assert f"you typed “`{visible('zzzz-not-a-token')}`”" in feedback
    assert f"next token was “`{visible(trace.tokens[start + 1])}`”" in feedback
    at.button(key="lm_objective.restart").click().run()
    assert _metric(at, "you") == "0 / 0"


def test_pages_work_on_a_gpt2_architecture(tiny_hub):
    at = open_page(BLOCK)
    at.session_state["shared.model"] = "tiny-test/gpt2"
    at.run()
    assert not at.exception, at.exception
    assert "ln_1 (LayerNorm)" in _dot(at) and "attn (GPT2Attention)" in _dot(at)
    assert at.slider(key="block.layer").max == 1
    assert float(_metric(at, "rebuilt vs model")) < 1e-4
    at.switch_page(FULL).run()
    assert not at.exception, at.exception
    assert sorted(chart_data(at, "guess")["layer"].unique()) == [0, 1, 2]
    sizes = chart_data(at, "billions")
    assert len(sizes[sizes["loaded"]]) == 1
    at.switch_page(OBJ).run()
    assert not at.exception, at.exception
    assert chart_data(at, "bits")["bits"].iloc[1:].notna().all()
