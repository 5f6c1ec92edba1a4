"""Page 18 (The Inference Loop): greedy tokens with and without the KV cache against
model.generate, per-token timings, the KV-cache formula against the cache tensors of real and
published configurations, and the page through AppTest."""

from __future__ import annotations

import pytest
import torch
from apptest_util import all_chart_data, chart_data, chart_specs, open_page
from apptest_util import metric as _metric

from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.runtime.generation import DecodingSettings, generate_stream

PROMPT = "The capital of France is"


def _greedy(lm, ids, n, use_cache):
    s = DecodingSettings(temperature=0.0, max_new_tokens=n, stop_at_eos=False)
    return [st.token_id for st in generate_stream(lm, ids, s, use_cache=use_cache)]


def _meta_cache_bytes(config, tokens: int, dtype: torch.dtype) -> int:
    """Build the architecture on the meta device (no memory) and run it: the returned cache
    tensors have real shapes and dtypes but no storage."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():
        out = model(torch.zeros(1, tokens, dtype=torch.long, device="meta"), use_cache=True)
    return inf.cache_tensor_bytes(out.cache)


P18 = "pages/18_inference_loop.py"


@pytest.fixture(scope="module")
def page18():
    at = open_page(P18)
    assert not at.exception, at.exception
    at.slider(key="inference_loop.max_tokens").set_value(5).run()
    return at


def _start(at, prefix: str) -> None:
    start = [b for b in at.button if b.label.startswith(prefix)]
    assert start, [b.label for b in at.button]
    start[0].click().run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("which", ["smollm2", "tiny_gpt2"])
def test_greedy_tokens_same_with_cache_without_cache_and_generate(request, which):
    """The one door's greedy loop, with and without its KV cache, against model.generate."""
    lm = request.getfixturevalue("lm" if which == "smollm2" else "tiny_gpt2")
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    n = 12
    cached, uncached = _greedy(lm, ids, n, True), _greedy(lm, ids, n, False)
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=lm.tokenizer.eos_token_id,
        )
    assert cached == uncached == ref[0, len(ids) :].tolist()


def test_time_per_token_marks_prefill_and_counts_positions(lm):
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    timings = inf.time_per_token(lm, ids, 4, use_cache=True)
    assert [t.position for t in timings] == list(range(len(ids), len(ids) + 4))
    assert [t.prefill for t in timings] == [True, False, False, False]
    assert all(t.ms > 0 for t in timings)


def test_kv_formula_equals_the_cache_the_embedded_model_returns(lm):
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = lm.model(torch.tensor([ids]), use_cache=True)
    geo = geometry(lm.config)
    assert geo.n_kv_heads == lm.config.num_key_value_heads < geo.n_heads  # GQA read, not assumed
    assert inf.cache_tensor_bytes(out.cache) == inf.kv_cache_bytes(lm.config, len(ids), 4)


@pytest.mark.parametrize("model", inf.published_models(), ids=lambda m: m.name)
def test_kv_formula_equals_cache_tensors_of_published_configs(model):
    for dtype, width in ((torch.float32, 4), (torch.bfloat16, 2)):
        assert _meta_cache_bytes(model.config, 7, dtype) == inf.kv_cache_bytes(
            model.config, 7, width
        )


def test_published_geometries_read_both_naming_schemes():
    by_name = {m.name: geometry(m.config) for m in inf.published_models()}
    gpt2 = by_name["GPT-2 small (124M)"]
    assert (gpt2.n_layers, gpt2.n_kv_heads, gpt2.head_dim, gpt2.context) == (12, 12, 64, 1024)
    # Llama-2-7B in fp16 at its 4096-token context: the often-quoted 2 GiB per sequence
    llama2 = next(m for m in inf.published_models() if m.name == "Llama-2-7B")
    assert inf.kv_cache_bytes(llama2.config, 4096, 2) == 2 * 1024**3
    assert by_name["Llama-3-8B"].cache_bytes_per_token(2) * 4 == by_name[
        "Llama-2-7B"
    ].cache_bytes_per_token(2)


def test_step_shows_prefill_then_decode_and_the_cache_growing(page18, lm):
    at = page18
    at.button(key="inference_loop.step").click().run()
    at.button(key="inference_loop.step").click().run()
    assert not at.exception, at.exception
    steps = at.session_state["inference_loop.steps"]
    ids = at.session_state["inference_loop.ids"]
    assert [s.prefill for s in steps] == [True, False]
    prompt_len = len(ids) - 2
    assert [s.cached_tokens for s in steps] == [prompt_len, prompt_len + 1]
    per_token = geometry(lm.config).cache_bytes_per_token(4)
    assert _metric(at, "KV cache now") == f"{per_token * (prompt_len + 1):,} B"
    growth = chart_data(at, "KV cache bytes")
    assert growth["KV cache bytes"].diff().dropna().tolist() == [per_token]


def test_run_streams_the_greedy_continuation_to_the_cap(page18, lm):
    at = page18
    at.button(key="inference_loop.run").click().run()
    assert not at.exception, at.exception
    ids = at.session_state["inference_loop.ids"]
    steps = at.session_state["inference_loop.steps"]
    assert len(steps) == 5
    prompt = ids[: len(ids) - 5]
    ref = [
        s.token_id
        for s in generate_stream(lm, prompt, DecodingSettings(temperature=0.0, max_new_tokens=5))
    ]
    assert ids[len(prompt) :] == ref  # step-by-step + run = one uninterrupted greedy pass
    assert at.button(key="inference_loop.step").disabled  # the cap is reached
    at.button(key="inference_loop.reset").click().run()
    assert at.session_state["inference_loop.steps"] == []


def test_timing_waits_for_its_button_and_positions_are_whole_numbers(page18):
    at = page18
    assert not all_chart_data(at, "mode")  # first render measures nothing
    at.slider(key="inference_loop.timing_tokens").set_value(8).run()
    _start(at, "Time 8 tokens with and without the cache")
    spec = next(s for s in chart_specs(at) if "mode" in str(s))
    assert spec["encoding"]["x"]["axis"]["format"] == "d"  # "17", never "17.0"


def test_timing_chart_has_both_modes_and_the_same_tokens(page18):
    frames = all_chart_data(page18, "mode")
    assert frames
    df = frames[0]
    assert set(df["mode"]) == {"with KV cache", "without cache"}
    cached = df[df["mode"] == "with KV cache"]
    uncached = df[df["mode"] == "without cache"]
    assert len(cached) == len(uncached) > 0  # decode steps, both modes, same positions
    assert cached["position"].tolist() == uncached["position"].tolist()
    assert (df["ms"] > 0).all()


def test_hostile_prompt_is_shown_as_text():
    from apptest_util import APP
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["shared.prompt"] = "<script>alert(1)</script> costs $x$ 🙂 مرحبا 中文\u200b"
    at.run()
    at.switch_page(P18).run()
    at.slider(key="inference_loop.max_tokens").set_value(2).run()
    at.button(key="inference_loop.step").click().run()
    assert not at.exception, at.exception
    shown = " ".join(m.value for m in at.caption)
    assert r"\<script\>" in shown and r"\$x\$" in shown


def _timings(cached: bool, ms: list[float]) -> tuple[inf.TokenTiming, ...]:
    return tuple(inf.TokenTiming(16 + i, m, cached, i == 0, 100 + i) for i, m in enumerate(ms))


def test_timing_caption_says_when_the_cached_run_measured_slower():
    # Measured under load: with the cache 397 ms/token, without 161, "Speed-up 0.41×", under a
    # caption saying only that the cache saves every step re-reading the sequence.
    from components.inference_loop import timing_caption

    slow = inf.CacheComparison(
        _timings(True, [300, 80, 900, 700]), _timings(False, [300, 150, 160, 170])
    )
    assert slow.speedup < 1
    text = timing_caption(slow)
    assert "the cached run was the slower one (560 against 160 ms per token" in text
    assert "slowest step 900 ms" in text and "Measure again" in text
    fast = inf.CacheComparison(
        _timings(True, [300, 50, 55, 60]), _timings(False, [300, 150, 160, 170])
    )
    assert "slower" not in timing_caption(fast)
