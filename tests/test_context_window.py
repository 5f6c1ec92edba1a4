"""Page 20 (The Context Window): forward-pass memory against its formulas, truncation
against the tokenizer's own, the needle-in-a-haystack probe, and the page through AppTest."""

from __future__ import annotations

import random
import re

import pytest
import torch
from apptest_util import all_chart_data, chart_data, open_page
from apptest_util import metric as _metric
from hypothesis import given, settings
from hypothesis import strategies as hs

from core import context_window
from core import inference_loop as inf

P20 = "pages/20_context_window.py"


@pytest.fixture(scope="module")
def page20():
    at = open_page(P20)
    assert not at.exception, at.exception
    return at


def _start(at, prefix: str) -> None:
    start = [b for b in at.button if b.label.startswith(prefix)]
    assert start, [b.label for b in at.button]
    start[0].click().run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("tokens", [1, 9, 40])
def test_forward_cost_memory_equals_formulas_gpt2(tiny_gpt2, tokens):
    cost = context_window.forward_cost(tiny_gpt2, list(range(100, 100 + tokens)))
    assert cost.kv_bytes == cost.kv_formula == 2 * 2 * 4 * 8 * tokens * 4
    assert cost.scores_bytes == cost.scores_formula == 4 * tokens * tokens * 4


def test_forward_cost_memory_equals_formulas_llama(lm):
    ids = context_window.filler_ids(lm.tokenizer, 48)
    cost = context_window.forward_cost(lm, ids)
    assert cost.tokens == 48
    assert cost.kv_bytes == cost.kv_formula
    assert cost.scores_bytes == cost.scores_formula == lm.config.num_attention_heads * 48**2 * 4


def test_attention_hooks_are_removed(tiny_gpt2):
    def count() -> int:
        return sum(len(m._forward_hooks) for m in tiny_gpt2.model.modules())

    before = count()
    with pytest.raises(RuntimeError):
        with context_window.attention_score_bytes(tiny_gpt2.model):
            assert count() > before
            raise RuntimeError("a failing forward")
    assert count() == before


@settings(max_examples=200, deadline=None)
@given(
    n=hs.integers(0, 60),
    budget=hs.integers(0, 80),
    strategy=hs.sampled_from(["left", "right", "middle"]),
)
def test_truncation_keeps_exactly_the_budget(n, budget, strategy):
    ids = list(range(1000, 1000 + n))
    cut = context_window.truncate(ids, budget, strategy)
    assert len(cut.kept) == min(budget, n)
    assert cut.dropped == n - len(cut.kept)
    assert list(cut.kept) == [ids[i] for i in cut.kept_positions]
    assert list(cut.kept_positions) == sorted(set(cut.kept_positions))  # order preserved


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_matches_the_tokenizers_own(lm, side):
    text = "One two three four five six seven eight nine ten eleven twelve"
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    lm.tokenizer.truncation_side, old = side, lm.tokenizer.truncation_side
    try:
        ref = lm.tokenizer(text, add_special_tokens=False, truncation=True, max_length=5)
    finally:
        lm.tokenizer.truncation_side = old
    assert list(context_window.truncate(ids, 5, side).kept) == ref["input_ids"]


def test_middle_truncation_keeps_both_ends():
    cut = context_window.truncate(list(range(10)), 5, "middle")
    assert cut.kept == (0, 1, 2, 8, 9)


def test_haystack_hides_the_needle_at_its_depth(lm):
    tok = lm.tokenizer
    start = context_window.haystack(tok, 200, 0.0, "12345")
    end = context_window.haystack(tok, 200, 1.0, "12345")
    assert start.text.startswith("The secret number is 12345.")
    assert end.text.endswith("The secret number is 12345.")
    assert start.tokens == len(tok(start.text, add_special_tokens=False)["input_ids"])
    assert 200 <= start.tokens <= 200 + 16  # at most one filler sentence over


@pytest.mark.parametrize(
    "answer,found",
    [
        ("48213.", True),
        (" 4 8 2 1 3", True),
        ("48,213", True),
        ("4821", False),
        ("no idea", False),
        ("12 48213", False),
    ],
)
def test_recall_reads_the_first_number(answer, found):
    assert context_window.recalled(answer, "48213") is found


def test_needle_probe_yields_progress_for_every_trial(lm):
    grid = context_window.needle_grid([64, 10**6], [0.0, 1.0], lm.config.max_position_embeddings)
    assert grid == [(64, 0.0), (64, 1.0)]  # the over-long length is dropped, not run
    progress = list(context_window.needle_probe(lm, [64], [0.0, 1.0], distractors=2))
    assert [(p.done, p.total) for p in progress] == [(1, 2), (2, 2)]
    assert progress[0].trial.secret != progress[1].trial.secret  # a new number per trial
    assert all(len(p.trial.distractors) == 2 for p in progress)
    special = set(lm.tokenizer.all_special_ids)
    for p in progress:  # reference: the same prompt answered by model.generate, greedily
        hay = context_window.haystack(
            lm.tokenizer,
            p.trial.length,
            p.trial.depth,
            p.trial.secret,
            p.trial.distractors,
            p.trial.key,
        )
        ids = context_window.needle_prompt_ids(lm.tokenizer, hay)
        with torch.inference_mode():
            out = lm.model.generate(
                torch.tensor([ids]),
                do_sample=False,
                max_new_tokens=context_window.NEEDLE_NEW_TOKENS,
                pad_token_id=lm.tokenizer.eos_token_id,
            )
        answer = lm.tokenizer.decode([t for t in out[0, len(ids) :].tolist() if t not in special])
        assert p.trial.answer == answer.strip()
        assert p.trial.found == context_window.recalled(answer, p.trial.secret)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.) ", text)


@pytest.mark.parametrize("count", [0, 2, 5, 10, context_window.DISTRACTORS_CAP])
@pytest.mark.parametrize("length,depth", [(256, 0.0), (256, 0.5), (1024, 0.25), (1024, 1.0)])
def test_haystack_holds_the_asked_distractors_at_sentence_boundaries(lm, count, length, depth):
    tok = lm.tokenizer
    key, secret, facts = context_window.draw_facts(random.Random(f"{count}/{length}"), count)
    hay = context_window.haystack(tok, length, depth, secret, facts, key)
    needle = f"The {key} is {secret}."
    sentences = _sentences(hay.text)
    # every fact is one whole sentence, once; the text holds no other number
    assert sentences.count(needle) == 1
    assert len(facts) == count and all(sentences.count(f) == 1 for f in facts)
    numbers = re.findall(r"\d+", hay.text)
    assert sorted(numbers) == sorted([secret] + [context_window.fact_number(f) for f in facts])
    assert len(set(numbers)) == count + 1  # distinct, none equal to the secret
    keys = [f.split(" is ")[0] for f in facts]
    assert len(set(keys)) == count and f"The {key}" not in keys
    # reference: the tokenizer on the built text; the length counts needle and distractors
    assert hay.tokens == len(tok(hay.text, add_special_tokens=False)["input_ids"])
    assert length <= hay.tokens <= length + 16  # at most one filler sentence over
    before = len(tok(hay.text[: hay.text.index(needle)], add_special_tokens=False)["input_ids"])
    assert abs(before - depth * hay.tokens) <= 16  # the needle within a sentence of its depth


def test_distractor_numbers_never_equal_the_secret():
    for seed in range(300):
        _, secret, facts = context_window.draw_facts(
            random.Random(seed), context_window.DISTRACTORS_CAP
        )
        numbers = [context_window.fact_number(f) for f in facts]
        assert secret not in numbers and len(set(numbers)) == len(numbers)
        assert all(len(n) == 5 for n in [secret, *numbers])


def test_more_distractors_add_facts_to_the_same_trial(lm):
    few, many = (
        context_window.needle_haystacks(lm.tokenizer, [256], [0.5], 8192, 0, n) for n in (2, 5)
    )
    assert (few[0].key, few[0].secret) == (many[0].key, many[0].secret)
    assert few[0].distractors == many[0].distractors[:2]


def test_a_miss_names_the_distractor_it_copied():
    facts = ("The bus number is 48213.", "The seat number is 17722.")
    trial = context_window.NeedleTrial(
        256, 260, 0.5, "35394", "17 722.", False, 1.0, facts, "room number"
    )
    assert trial.picked == "The seat number is 17722."
    other = context_window.NeedleTrial(256, 260, 0.5, "35394", "11111.", False, 1.0, facts)
    assert other.picked is None


def test_needle_estimate_counts_the_distractor_tokens(lm):
    from components.context_window import needle_haystack_tokens

    lengths, depths = (256, 1024), (0.0, 0.5)
    costs = [context_window.ForwardCost(n, n / 1000, 0, 0, 0, 0) for n in (32, 64, 2048)]
    hays = context_window.needle_haystacks(
        lm.tokenizer, lengths, depths, 8192, context_window.NEEDLE_SEED, 10
    )
    # reference: the formula applied to the haystacks as built, distractor sentences included
    lengths_built = [len(lm.tokenizer(h.text, add_special_tokens=False)["input_ids"]) for h in hays]
    assert all(len(h.distractors) == 10 for h in hays)
    expected = sum(
        (n + context_window.NEEDLE_PROMPT_EXTRA) / 1000 + context_window.NEEDLE_NEW_TOKENS * 0.032
        for n in lengths_built
    )
    shown = needle_haystack_tokens(lm.model_id, lengths, depths, 10)
    assert [n for n, _ in shown] == lengths_built
    assert context_window.needle_estimate_s(shown, costs) == pytest.approx(expected)


def test_filler_ids_exact_length(lm):
    assert len(context_window.filler_ids(lm.tokenizer, 333)) == 333


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


def test_default_needle_run_shows_recalls_and_misses():
    """The teaching claim, on the real embedded model at the page's defaults (15 trials): the
    probe can fail, and the page's summary agrees with the grid it draws."""
    from components import context_window as cw

    at = open_page(P20)
    assert at.multiselect(key="context_window.needle_lengths").value == list(
        cw.NEEDLE_DEFAULT_LENGTHS
    )
    assert at.radio(key="context_window.distractors").value == cw.NEEDLE_DEFAULT_DISTRACTORS
    n = len(cw.NEEDLE_DEFAULT_LENGTHS) * len(cw.NEEDLE_DEFAULT_DEPTHS)
    _start(at, f"Run {n} trials")
    cells = chart_data(at, "recall")
    found = int(cells["recall"].sum())
    assert len(cells) == n and 0 < found < n  # at least one recall and at least one miss
    summary = " ".join(m.value for m in at.markdown)
    assert f"{found} of {n} recalled." in summary
    misses = at.dataframe[-1].value
    assert len(misses) == n - found and set(misses["its number"]) == set(
        cells[cells["recall"] == 0]["secret"]
    )


def test_forward_caption_says_when_a_longer_pass_measured_faster():
    # Under load the sweep measured 4.5 s for 32 tokens and 1.5 s for 128, under a caption
    # saying time grows nearly linearly with length.
    import pandas as pd

    from components.context_window import noisy_times_note

    noisy = pd.DataFrame({"tokens": [32, 64, 128, 256], "seconds": [4.5, 4.1, 1.5, 8.8]})
    note = noisy_times_note(noisy)
    assert "128 tokens took 1,500 ms, less than 32 tokens (4,500 ms)" in note
    assert "Measure again" in note
    steady = pd.DataFrame({"tokens": [32, 64, 128, 256], "seconds": [0.10, 0.09, 0.2, 0.4]})
    assert noisy_times_note(steady) == ""  # within 20 %: not called out
