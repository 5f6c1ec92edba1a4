"""Fast mode: the int8 copy against torch's own dynamic quantisation, the shared model left
untouched, generation through the one door, and page 18's toggle and measurement."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from apptest_util import all_chart_data, open_page

from core import inference_loop
from core.runtime import quantize as qz
from core.runtime.generation import DecodingSettings, generate_stream

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def lm8(lm):
    return qz.int8_variant(lm)


def test_int8_copy_equals_torch_quantize_dynamic_and_leaves_the_model_alone(lm, lm8):
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    with torch.inference_mode():
        before = lm.model(ids).logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(lm.model), qz.quantised_names(lm.model), dtype=torch.qint8
        )
    with torch.inference_mode():
        ours, theirs, after = lm8.model(ids).logits, ref(ids).logits, lm.model(ids).logits
    assert torch.equal(ours, theirs)  # the same arithmetic as torch's own deep-copied version
    assert torch.equal(before, after)  # the shared float32 model is untouched
    assert qz.is_int8(lm8.model) and not qz.is_int8(lm.model)
    assert lm8.model.model.embed_tokens.weight is lm.model.model.embed_tokens.weight
    linear = {n for n, m in lm8.model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linear and all(n.endswith("down_proj") for n in linear)  # kept in float32
    assert not (ours - before).abs().max() == 0  # int8 really rounds something


def test_linear_weight_bytes_are_a_quarter(lm):
    fp, q = qz.linear_weight_bytes(lm.model)
    names = qz.quantised_names(lm.model)
    n = sum(m.weight.numel() for k, m in lm.model.named_modules() if k in names)
    assert fp == 4 * n and q == n + 16 * len(names)
    assert 0.7 < qz.linear_share(lm.model) < 0.9  # SmolLM2: all but the (tied) embedding


def test_gpt2_style_conv1d_layers_are_not_linear():
    from tiny_models import tiny_model

    model = tiny_model("gpt2")
    assert qz.linear_share(model) < 0.5  # only the output head: fast mode would change little


def test_the_one_door_generates_with_the_int8_copy_one_learner_at_a_time(lm, lm8):
    from core.runtime.generation import batch_invariant

    assert batch_invariant(lm.model) and not batch_invariant(lm8.model)
    ids = lm8.tokenizer(PROMPT)["input_ids"]
    s = DecodingSettings(temperature=0.0, max_new_tokens=6, stop_at_eos=False)
    got = [x.token_id for x in generate_stream(lm8, ids, s)]
    with torch.inference_mode():
        ref = lm8.model.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, min_new_tokens=6
        )
    assert got == ref[0, len(ids) :].tolist()  # transformers' own greedy loop, cache and all


def test_agreeing_prefix():
    assert inference_loop.agreeing_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert inference_loop.agreeing_prefix([1, 2], [1, 2]) == 2
    assert inference_loop.agreeing_prefix([], [1]) == 0


def test_page18_fast_mode_generates_and_measures(lm, lm8):
    at = open_page("pages/18_inference_loop.py")
    assert not at.exception, at.exception
    at.slider(key="inference_loop.max_tokens").set_value(4).run()
    at.toggle(key="inference_loop.int8").set_value(True).run()
    at.button(key="inference_loop.run").click().run()
    assert not at.exception, at.exception
    ids = at.session_state["inference_loop.ids"]
    prompt = ids[: len(ids) - 4]
    s = DecodingSettings(temperature=0.0, max_new_tokens=4)
    assert ids[len(prompt) :] == [x.token_id for x in generate_stream(lm8, prompt, s)]
    assert not all_chart_data(at, "mode") or "int8 weights" not in str(all_chart_data(at, "mode"))
    at.slider(key="inference_loop.int8_tokens").set_value(8).run()
    start = [b for b in at.button if b.label.startswith("Generate 8 tokens with float32")]
    assert start, [b.label for b in at.button]
    start[0].click().run()
    assert not at.exception, at.exception
    frames = [f for f in all_chart_data(at, "mode") if "int8 weights" in set(f["mode"])]
    assert frames and set(frames[0]["mode"]) == {"float32 weights", "int8 weights"}
    same = next(m.value for m in at.metric if m.label == "Same tokens before they differ")
    fp_ids = [
        x.token_id
        for x in generate_stream(
            lm, prompt, DecodingSettings(temperature=0.0, max_new_tokens=8, stop_at_eos=False)
        )
    ]
    q_ids = [
        x.token_id
        for x in generate_stream(
            lm8, prompt, DecodingSettings(temperature=0.0, max_new_tokens=8, stop_at_eos=False)
        )
    ]
    assert same == f"{inference_loop.agreeing_prefix(fp_ids, q_ids)} of 8"
