"""AppTest tests of pages 18 (inference loop) and 20 (context window) on the embedded model."""

from __future__ import annotations

import pytest
from apptest_util import all_chart_data, chart_data, chart_specs, open_page

from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.runtime.generation import DecodingSettings, generate_stream

P18 = "pages/18_inference_loop.py"
P20 = "pages/20_context_window.py"


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture(scope="module")
def page18():
    at = open_page(P18)
    assert not at.exception, at.exception
    at.slider(key="inference_loop.max_tokens").set_value(5).run()
    return at


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


def _start(at, prefix: str) -> None:
    start = [b for b in at.button if b.label.startswith(prefix)]
    assert start, [b.label for b in at.button]
    start[0].click().run()
    assert not at.exception, at.exception


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


@pytest.fixture(scope="module")
def page20():
    at = open_page(P20)
    assert not at.exception, at.exception
    return at


def test_budget_and_strategy_decide_what_the_model_sees(page20, lm):
    at = page20
    at.slider(key="context_window.budget").set_value(5).run()
    assert _metric(at, "Tokens kept / dropped").startswith("5 / ")
    seen = {}
    for strategy in ("left", "right", "middle"):
        at.radio(key="context_window.strategy").set_value(strategy).run()
        assert not at.exception, at.exception
        seen[strategy] = at.text[0].value
    ids = lm.tokenizer(at.session_state["shared.prompt"], add_special_tokens=False)["input_ids"]
    assert seen["right"] == lm.tokenizer.decode(ids[:5])
    assert seen["left"] == lm.tokenizer.decode(ids[-5:])
    assert seen["middle"] == lm.tokenizer.decode(ids[:3] + ids[-2:])


def test_forward_sweep_waits_for_its_button(page20):
    at = page20
    assert not all_chart_data(at, "how")  # no forward pass on first render
    at.select_slider(key="context_window.longest").set_value(128).run()
    _start(at, "Measure forward passes up to 128 tokens")
    assert set(chart_data(at, "how")["tokens"]) == {32, 64, 128}


def test_forward_memory_chart_measured_equals_formula(page20):
    caption = " ".join(c.value for c in page20.caption)
    assert "Every measurement equals its formula." in caption
    mem = chart_data(page20, "how")
    measured = mem[mem["how"] == "measured"].reset_index(drop=True)
    formula = mem[mem["how"] == "formula"].reset_index(drop=True)
    assert (measured["MB"] == formula["MB"]).all()
    scores = measured[measured["part"].str.startswith("attention")]
    ratio = scores["MB"].iloc[-1] / scores["MB"].iloc[0]
    t = mem["tokens"].unique()
    assert ratio == pytest.approx((t.max() / t.min()) ** 2)  # the n² part


def test_kv_chart_follows_the_configs_and_the_dtype(page20):
    at = page20

    def kv_frame():
        return chart_data(at, "GB")

    bf16 = kv_frame()
    llama2 = next(m for m in inf.published_models() if m.name == "Llama-2-7B")
    row = bf16[(bf16["model"] == "Llama-2-7B") & (bf16["tokens"] == 4096)]
    assert row["GB"].iloc[0] == inf.kv_cache_bytes(llama2.config, 4096, 2) / 1e9
    assert bf16[bf16["model"] == "GPT-2 small (124M)"]["tokens"].max() == 1024
    at.radio(key="context_window.dtype").set_value("float32").run()
    fp32 = kv_frame()
    assert (fp32["GB"].to_numpy() == 2 * bf16["GB"].to_numpy()).all()


def test_needle_probe_runs_as_a_job_and_charts_each_trial(page20):
    at = page20
    at.multiselect(key="context_window.needle_lengths").set_value([128]).run()
    at.multiselect(key="context_window.needle_depths").set_value([0.0, 1.0]).run()
    start = [b for b in at.button if b.label.startswith("Run 2 trials")]
    assert start and "(about " in start[0].label  # an estimate from the measured passes
    start[0].click().run()
    assert not at.exception, at.exception
    cells = chart_data(at, "recall")
    assert sorted(cells["d"].tolist()) == [0.0, 1.0]
    # one grid: the live chart of the run that just ended, not a second copy under it
    assert len(all_chart_data(at, "recall")) == 1
    found = int(cells["recall"].sum())
    assert _metric(at, "Recall") == f"{found / 2:.0%}"
    at.run()  # the next rerun (or learner) reads the stored result instead of a start button
    assert any("shared by everyone" in c.value for c in at.caption)
    assert len(all_chart_data(at, "recall")) == 1
    assert not [b for b in at.button if b.label.startswith("Run 2 trials")]
