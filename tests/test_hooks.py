"""core/inspect/hooks.py: hooks live only inside their block, and see only their own thread."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from conftest import check_untouched
from tiny_models import tiny_model

from core import block as core_block
from core import full_model as core_lens
from core import neuron as neurons
from core.inspect.anatomy import anatomy
from core.inspect.hooks import Hook, capture_inputs, capture_outputs, scoped_hooks
from core.runtime.models import LoadedModel


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", vocab_size=100)


def test_two_threads_capturing_at_once_each_get_their_own_tensors(model):
    """The bug: a capture came back with another request's tensor ((1, 4, d) became (3, d))."""
    block = model.model.layers[1]
    lengths = {"a": 4, "b": 3}
    both_inside = threading.Barrier(2, timeout=30)
    got: dict[str, list[tuple[int, ...]]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def session(name: str) -> None:
        try:
            ids = torch.arange(10, 10 + lengths[name])[None]
            for _ in range(5):
                with capture_outputs({"out": block}) as captured, torch.inference_mode():
                    both_inside.wait()  # both threads' hooks are installed now
                    model(ids)
                    both_inside.wait()  # and both forward passes have run
                    got[name].append(tuple(captured["out"].shape))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(n,)) for n in lengths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert got["a"] == [(1, 4, 32)] * 5 and got["b"] == [(1, 3, 32)] * 5


def test_capture_mlp_in_two_threads_matches_one_thread(model):
    """The public capture used by pages 01 and 03, run from two threads at once."""
    alone = {n: neurons.capture_mlp(model, list(range(20, 20 + n)), 1).neurons for n in (3, 6)}
    results: dict[int, list] = {3: [], 6: []}

    def run(n: int) -> None:
        for _ in range(10):
            results[n].append(neurons.capture_mlp(model, list(range(20, 20 + n)), 1).neurons)

    threads = [threading.Thread(target=run, args=(n,)) for n in (3, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for n in (3, 6):
        assert len(results[n]) == 10
        for r in results[n]:
            torch.testing.assert_close(torch.from_numpy(r), torch.from_numpy(alone[n]))


def test_hooks_are_removed_even_when_the_block_raises(model):
    with pytest.raises(RuntimeError), capture_inputs({"m": model.model.layers[0].mlp}):
        raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_an_intervention_changes_only_its_own_thread(model):
    ids = torch.arange(5, 12)[None]
    zero = Hook(model.model.layers[0].mlp, "forward", lambda m, a, out: out * 0)
    with torch.inference_mode():
        plain = model(ids).logits
    other: dict[str, torch.Tensor] = {}
    with scoped_hooks(zero), torch.inference_mode():
        changed = model(ids).logits
        t = threading.Thread(target=lambda: other.setdefault("x", model(ids).logits))
        t.start()
        t.join(30)
    assert not torch.allclose(changed, plain)
    torch.testing.assert_close(other["x"], plain)


def test_the_session_end_check_catches_a_left_hook(model):
    shared = copy.deepcopy(model)
    check_untouched(shared, model)
    shared.model.layers[0].register_forward_hook(lambda *a: None)
    with pytest.raises(AssertionError, match="left on"):
        check_untouched(shared, model)


TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


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
