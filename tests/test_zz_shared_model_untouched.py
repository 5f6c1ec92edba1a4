"""Runs last: after every page test, the model shared by all sessions is exactly as loaded."""

from __future__ import annotations

import torch


def test_shared_model_has_no_hooks_and_unchanged_weights(lm):
    from components.models import _embedded

    shared = _embedded().model  # the st.cache_resource copy every AppTest page used
    for name, module in shared.named_modules():
        for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]:
            # transformers installs its own output-capturing hooks on first output_attentions
            assert "output_capturing_hook" in getattr(hook, "__qualname__", ""), (
                f"hook {hook!r} left on {name}")
    reference = lm.model.state_dict()
    for key, value in shared.state_dict().items():
        assert torch.equal(value, reference[key]), f"{key} was changed"
    assert not shared.training
    assert all(not p.requires_grad for p in shared.parameters())
