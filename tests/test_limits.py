"""Page 25: probe scoring against hand-computed cases, probabilities against the logits, the page."""

from __future__ import annotations

import pytest
import torch
from apptest_util import chart_frames, open_page

from core import limits as L


@pytest.mark.parametrize(
    "text, want",
    [
        (" 3 times in the word.", 3),
        (" three times.", 3),
        ("twice", None),
        (" 12", 12),
        ("in the word 2 times", 2),
        ("", None),
    ],
)
def test_parse_count(text, want):
    assert L.parse_count(text) == want


@pytest.mark.parametrize(
    "text, want",
    [
        (" 579", 579),
        (" 1,234.", 1234),
        (" 12 345", 12345),
        ("= 9 because", 9),
        (" none", None),
        (" -4", -4),
    ],
)
def test_parse_integer(text, want):
    assert L.parse_integer(text) == want


@pytest.mark.parametrize(
    "pred, truth, want",
    [
        (579, 579, 1.0),
        (578, 579, 2 / 3),
        (1579, 579, 1.0),
        (79, 579, 2 / 3),
        (None, 579, 0.0),
        (9, 10, 0.0),
        (110, 100, 2 / 3),
    ],
)
def test_digit_accuracy_by_hand(pred, truth, want):
    assert L.digit_accuracy(pred, truth) == pytest.approx(want)


def test_other_scorers_by_hand():
    assert L.mentions(" Brasilia, the planned city.", "Brasília")
    assert not L.mentions(" Istanbul. Ankara is not.", "Ankara")  # only the first clause counts
    assert L.mentions(" Bern", "Bern") and not L.mentions(" Berne", "Bern")
    assert L.parse_yes_no("Yes, it is.") == "yes" and L.parse_yes_no("Nope") is None
    assert L.declines("I'm not aware of any such engine.")
    assert L.declines("I don\u2019t know.")
    assert not L.declines("The Velquist engine was invented by Karl Velquist in 1902.")
    assert L.spell_out("abc") == "a b c"


def test_results_recompute_accuracy_from_stored_answers():
    c = L.CountingResult("r", ("error", "arrow"), False, (" 3 times", " two"), (3, 2), ((), ()))
    assert c.predicted == (3, 2) and c.accuracy == 1.0
    c2 = L.CountingResult("r", ("error", "arrow"), False, (" 2 times", " two"), (3, 2), ((), ()))
    assert c2.accuracy == 0.5
    a = L.AdditionResult(((1, 2, 3), (1, 4, 4), (2, 12, 30)), (" 5", " 9", " 41"))
    assert a.by_digits() == [(1, 0.5, 0.5, 2), (2, 0.0, 0.5, 1)]
    r = L.RephrasingResult(
        ("yes", "no"), (("a", "b"), ("c", "d")), (("Yes.", "yes"), ("No", "Yes"))
    )
    assert r.consistent == (True, False) and r.accuracy == 0.75
    f = L.FictionResult(("q1", "q2"), ("It was built in 1902.", "I don't know."))
    assert f.declined == (False, True) and f.fluent_share == 0.5


def test_addition_problems_have_the_asked_digits():
    probs = L.addition_problems(4, 3, seed=1)
    assert len(probs) == 12
    assert all(len(str(a)) == d and len(str(b)) == d for d, a, b in probs)
    assert probs == L.addition_problems(4, 3, seed=1)


def test_continuation_logprobs_match_one_by_one(lm):
    tok = lm.tokenizer
    prompt = tok("The current year is", add_special_tokens=False)["input_ids"]
    conts = [tok(t, add_special_tokens=False)["input_ids"] for t in (" 2019", " not known", " x")]
    batched = L.continuation_logprobs(lm, prompt, conts)
    for c, got in zip(conts, batched):
        with torch.inference_mode():
            logp = lm.model(torch.tensor([prompt + c])).logits[0].float().log_softmax(-1)
        want = sum(float(logp[len(prompt) + j - 1, t]) for j, t in enumerate(c))
        assert got == pytest.approx(want, abs=1e-3)


def test_pronoun_probe_reads_the_logits(lm):
    res = L.probe_pronouns(lm, ("nurse", "pilot"))
    she = lm.tokenizer(" she", add_special_tokens=False)["input_ids"][0]
    he = lm.tokenizer(" he", add_special_tokens=False)["input_ids"][0]
    for occ, p in zip(res.occupations, res.p_she):
        ids = lm.tokenizer(L.pronoun_prompt(occ), add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            probs = lm.model(torch.tensor([ids])).logits[0, -1].float().softmax(-1)
        assert p == pytest.approx(float(probs[she] / (probs[she] + probs[he])), abs=1e-4)


def test_capital_probe_confidence_is_the_greedy_tokens_probability(lm):
    res = L.probe_capitals(lm, (("France", "Paris"), ("Turkey", "Ankara")))
    assert len(res.answers) == 2
    assert all(0 < c <= 1 for c in res.confidence)
    assert all(g <= c + 1e-6 for g, c in zip(res.p_gold, res.confidence))  # greedy = the max
    assert res.accuracy == sum(res.correct) / 2


def test_page_runs_a_probe_and_links_to_its_cause():
    at = open_page("pages/25_limits.py")
    assert not at.exception
    assert len(at.tabs) == 7
    assert not chart_frames(at)
    start = [b for b in at.button if b.label.startswith("Run the pronouns probe")]
    assert start
    start[0].click().run(timeout=1200)  # a loaded shared machine can take minutes
    assert not at.exception
    frames = chart_frames(at)
    bars = frames[0][0]
    assert len(bars) == len(L.OCCUPATIONS) and bars["p(she)"].between(0, 1).all()
    labels = [el.proto.label for el in at.get("page_link")]
    assert "Why: the model reads tokens, not letters (06)" in labels  # counting -> tokenization
    assert "Associations live in the vectors (07)" in labels  # pronouns -> embeddings


def test_confidence_bars_each_keep_their_country_label():
    # 20 bars at 18 px: Vega's overlap removal named only every other country.
    import pandas as pd

    from components.limits import BAR_STEP, confidence_chart

    df = pd.DataFrame(
        {
            "question": [f"country {i}" for i in range(20)],
            "right answer": ["a"] * 20,
            "model's answer": ["a"] * 20,
            "right": [i % 4 != 0 for i in range(20)],
            "p(its first token)": [i / 20 for i in range(20)],
        }
    )
    spec = confidence_chart(df).to_dict()
    assert spec["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert spec["height"] == {"step": BAR_STEP} and BAR_STEP >= 20
