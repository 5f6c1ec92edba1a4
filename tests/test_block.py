"""Page 10 (The Transformer Block): a block rebuilt from its parts equals the next hidden
state, parameters per part add up to the model's count, and the page through AppTest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from apptest_util import chart_data, open_page
from apptest_util import metric as _metric

from core import block as core_block
from core.block import block_anatomy
from core.inspect.anatomy import anatomy, require
from core.runtime.models import LoadedModel

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


def _ids(m: LoadedModel, text: str = TEXT) -> torch.Tensor:
    return torch.tensor([m.tokenizer(text, add_special_tokens=False)["input_ids"]])


BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"


def _dot(at) -> str:
    return at.get("graphviz_chart")[0].proto.spec


LONG = " ".join(f"word{i} and then" for i in range(40))  # about 120+ tokens


def test_block_rebuilt_from_its_parts_equals_the_next_hidden_state(any_lm):
    ids = _ids(any_lm)
    hidden, got = core_block.run_block_capture(any_lm, ids)
    a = require(any_lm.model, "block")
    layers = a.blocks
    for i in range(len(layers)):
        x = hidden[i]
        with torch.inference_mode():  # norm1 captured by the hook is the block's own norm of x
            assert torch.allclose(got[f"{i}.norm1"], a.modules_of(i)["norm1"](x), atol=1e-6)
        rebuilt = core_block.rebuild_block(any_lm.model, i, x, got[f"{i}.attn"])
        assert torch.allclose(rebuilt, got[f"{i}.out"], atol=1e-5)
        target = hidden[i + 1]
        if i == len(layers) - 1:
            with torch.inference_mode():
                rebuilt = anatomy(any_lm.model).final_norm(rebuilt)
        assert torch.allclose(rebuilt, target, atol=1e-4), (i, (rebuilt - target).abs().max())


def test_block_anatomy_reports_the_rebuild_and_update_sizes(any_lm):
    a = core_block.block_anatomy(any_lm, TEXT)
    n = anatomy(any_lm.model).n_layers
    T = _ids(any_lm).shape[1]
    assert a.n_layers == n and a.token_rms.shape == (n, len(core_block.STAGES), T)
    assert float(a.rebuild_error.max()) < 1e-4
    hidden, got = core_block.run_block_capture(any_lm, _ids(any_lm))
    x, att = hidden[0], got["0.attn"]
    expect = (att.norm(dim=-1) / x.norm(dim=-1)).numpy()
    np.testing.assert_allclose(a.attn_update[0], expect, rtol=1e-4)
    np.testing.assert_allclose(a.token_rms[0, 0], x.pow(2).mean(-1).sqrt().numpy(), rtol=1e-5)


def test_parameters_per_part_add_up_to_the_models_count(any_lm):
    model = any_lm.model
    mp = core_block.model_parameters(model)
    rows = core_block.block_parameters(anatomy(model).blocks[0])
    assert sum(r.count for r in rows) == mp.per_block
    assert mp.embeddings + mp.per_block * mp.n_blocks + mp.final_norm + mp.lm_head == mp.total
    assert mp.total == sum(p.numel() for p in model.parameters())
    parts = {r.part for r in rows}
    assert set(require(model, "block").parts.names()) <= parts


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
