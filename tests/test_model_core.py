"""core.block, core.full_model, core.lm_objective against references, on SmolLM2 and a tiny GPT-2."""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import pytest
import torch

from core import block as core_block
from core import full_model as core_lens
from core import lm_objective as obj
from core.inspect.anatomy import anatomy, geometry, require
from core.inspect.hooks import capture_outputs
from core.inspect.trace import run_trace
from core.runtime.models import LoadedModel
from core.shared import published

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


@pytest.fixture(params=["smollm2", "tiny_gpt2"])
def any_lm(request, lm, tiny_gpt2):
    return lm if request.param == "smollm2" else tiny_gpt2


def _ids(m: LoadedModel, text: str = TEXT) -> torch.Tensor:
    return torch.tensor([m.tokenizer(text, add_special_tokens=False)["input_ids"]])


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model) -> list[tuple]:
    return [(tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for m in model.modules()]


def _our_hooks(model) -> list:
    """Hooks defined in core/ (transformers adds output-capturing hooks of its own, lazily)."""
    return [
        h
        for m in model.modules()
        for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
        if getattr(h, "__module__", "").startswith("core.")
    ]


# ---- the block ---------------------------------------------------------------------------


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


def test_capture_leaves_no_hook_and_the_model_unchanged(any_lm):
    model = any_lm.model
    before_state = _state(model)
    ids = _ids(any_lm)
    with torch.inference_mode():
        before = model(ids).logits
    core_block.block_anatomy(any_lm, TEXT)  # lets transformers install its own hooks first
    hooks_before = _hooks(model)
    core_block.block_anatomy(any_lm, TEXT)
    core_lens.logit_lens(any_lm, TEXT)
    assert _hooks(model) == hooks_before and not _our_hooks(model)
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, before)
    after_state = model.state_dict()
    assert all(torch.equal(before_state[k], after_state[k]) for k in before_state)


def test_capture_ignores_forward_passes_from_other_threads(tiny_gpt2):
    blk = anatomy(tiny_gpt2.model).blocks[0]
    other_ids = _ids(tiny_gpt2, "something else entirely")
    with capture_outputs({"b": blk}) as got:
        t = threading.Thread(target=lambda: tiny_gpt2.model(other_ids))
        t.start()
        t.join()
        assert "b" not in got  # another session's pass is neither seen nor touched
        with torch.inference_mode():
            tiny_gpt2.model(_ids(tiny_gpt2))
        assert got["b"].shape[1] == _ids(tiny_gpt2).shape[1]


def test_parameters_per_part_add_up_to_the_models_count(any_lm):
    model = any_lm.model
    mp = core_block.model_parameters(model)
    rows = core_block.block_parameters(anatomy(model).blocks[0])
    assert sum(r.count for r in rows) == mp.per_block
    assert mp.embeddings + mp.per_block * mp.n_blocks + mp.final_norm + mp.lm_head == mp.total
    assert mp.total == sum(p.numel() for p in model.parameters())
    parts = {r.part for r in rows}
    assert set(require(model, "block").parts.names()) <= parts


# ---- the logit lens and model sizes --------------------------------------------------------


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


# ---- the objective -------------------------------------------------------------------------


def test_mean_surprisal_equals_the_models_loss(any_lm):
    trace = run_trace(any_lm, TEXT)
    s = obj.surprisal(trace)
    ids = torch.tensor([trace.ids.tolist()])
    with torch.inference_mode():
        loss = float(any_lm.model(ids, labels=ids).loss)
    assert s.mean_nats == pytest.approx(loss, rel=1e-4)
    assert s.perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    np.testing.assert_allclose(s.bits, s.nats / math.log(2))
    assert len(s.nats) == trace.length - 1


def test_surprisal_of_each_token_is_minus_log_softmax(lm):
    trace = run_trace(lm, TEXT)
    ids = torch.tensor([trace.ids.tolist()])
    with torch.inference_mode():
        lp = torch.log_softmax(lm.model(ids).logits[0].double(), -1)
    ref = -lp[:-1].gather(1, ids[0, 1:, None])[:, 0].numpy()
    np.testing.assert_allclose(obj.surprisal(trace).nats, ref, rtol=1e-4, atol=1e-5)


def test_alternatives_at_a_position(lm):
    trace = run_trace(lm, TEXT)
    pos = trace.tokens.index(" Paris")
    top = tuple(lm.tokenizer.decode([int(i)]) for i in trace.top_ids[pos - 1])
    alt = obj.alternatives(trace, pos, top)
    assert alt.actual == " Paris" and alt.tokens == top
    assert alt.probs[0] >= alt.probs[-1]
    if alt.actual_rank is not None:
        assert alt.probs[alt.actual_rank - 1] == pytest.approx(alt.actual_prob, rel=1e-3)
    assert obj.alternatives(trace, 0, top).position == 1  # clamped: token 0 has no prediction


def test_guessing_game_scores_player_and_model(lm):
    trace = run_trace(lm, TEXT)
    state = obj.new_game(trace, start=trace.tokens.index(" Paris"))
    top1 = lm.tokenizer.decode([int(trace.top_ids[state.position - 1, 0])])
    state = obj.play(state, trace, "  PARIS ", top1)
    assert state.player_score == 1 and state.rounds[0].actual == " Paris"
    assert state.model_score == int(
        int(trace.top_ids[state.position - 2, 0]) == trace.ids[state.position - 1]
    )
    state = obj.play(state, trace, "definitely wrong", "x")
    assert state.player_score == 1 and len(state.rounds) == 2
    while not obj.game_over(state, trace):
        state = obj.play(state, trace, "", "")
    assert obj.play(state, trace, "x", "x") == state  # nothing after the last token


# ---- the trace's per-position scores, chunked --------------------------------------------------


def _full_logit_reference(lm, trace):
    with torch.inference_mode():
        logits = lm.model(torch.tensor([trace.ids.tolist()])).logits[0].double()
    return torch.softmax(logits, -1), logits


def test_trace_scores_equal_the_models_full_logits(any_lm):
    text = " ".join(["The capital of France is Paris, and the capital of Spain is Madrid."] * 6)
    trace = run_trace(any_lm, text)
    assert trace.length > 40  # more than one chunk of positions
    probs, logits = _full_logit_reference(any_lm, trace)
    np.testing.assert_allclose(trace.last_logits, logits[-1].numpy(), rtol=1e-4, atol=1e-4)
    ref = probs.topk(trace.top_ids.shape[1], dim=-1)
    np.testing.assert_allclose(trace.top_probs, ref.values.numpy(), rtol=1e-3, atol=1e-6)
    picked = np.take_along_axis(probs.numpy(), trace.top_ids.astype(np.int64), 1)
    np.testing.assert_allclose(picked, ref.values.numpy(), rtol=1e-3, atol=1e-6)  # ties aside


def test_trace_scores_follow_logits_changed_after_the_output_layer(tiny_gpt2, monkeypatch):
    """A model that scales its logits after lm_head (as Gemma caps them): the head alone would
    give other scores, so the trace falls back to the model's own logits."""
    model = tiny_gpt2.model
    forward = model.forward

    @functools.wraps(forward)  # keeps the signature: logits_to_keep is still accepted
    def scaled(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits * 3.0
        return out

    monkeypatch.setattr(model, "forward", scaled)
    trace = run_trace(tiny_gpt2, "Hello there, general Kenobi. " * 8)
    probs, logits = _full_logit_reference(tiny_gpt2, trace)
    np.testing.assert_allclose(trace.last_logits, logits[-1].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        trace.top_probs, probs.topk(trace.top_ids.shape[1], -1).values.numpy(), rtol=1e-3
    )


def test_trace_attentions_are_the_models_own_in_float16(any_lm):
    from core.inspect.anatomy import attention_modules
    from core.inspect.hooks import scoped_hooks
    from core.inspect.trace import HalfAttention

    trace = run_trace(any_lm, TEXT)
    ids = torch.tensor([trace.ids.tolist()])
    with torch.inference_mode():
        plain = any_lm.model(ids, output_attentions=True).attentions
    ref = torch.stack([a[0] for a in plain]).to(torch.float16).numpy()
    np.testing.assert_array_equal(trace.attentions, ref)
    half = HalfAttention(attention_modules(any_lm.model))
    with torch.inference_mode(), scoped_hooks(*half.hooks()):
        out = any_lm.model(ids, output_attentions=True)
    assert half.result(out.attentions) is half.buffer  # kept layer by layer, no float32 stack
