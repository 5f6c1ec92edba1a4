"""core/inspect/trace.py: a trace's per-position scores equal the model's full logits (also
when the output layer is patched), and its float16 attentions equal the model's own."""

from __future__ import annotations

import functools

import numpy as np
import torch

from core.inspect.trace import run_trace


def _full_logit_reference(lm, trace):
    with torch.inference_mode():
        logits = lm.model(torch.tensor([trace.ids.tolist()])).logits[0].double()
    return torch.softmax(logits, -1), logits


TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


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
