"""Page 19 (Decoding): our decoding against transformers (logits warpers, generate(), beam
search), and the page through AppTest."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
from apptest_util import BAD_INPUTS, chart_data, open_page
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from core import decoding as d
from core.runtime import generation

PROMPT = "The capital of France is"


def _logits(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 500, generator=g) * 3


def _same(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    torch.testing.assert_close(ours[finite], ref[finite])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("t", [0.3, 0.7, 1.5])
def test_temperature_matches_transformers(seed, t):
    x = _logits(seed)
    _same(generation.apply_temperature(x, t), TemperatureLogitsWarper(t)(None, x.clone()))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 50, 499])
def test_top_k_matches_transformers(seed, k):
    x = _logits(seed)
    _same(generation.apply_top_k(x, k), TopKLogitsWarper(k)(None, x.clone()))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_matches_transformers(seed, p):
    x = _logits(seed)
    _same(generation.apply_top_p(x, p), TopPLogitsWarper(p)(None, x.clone()))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [0.01, 0.1, 0.5])
def test_min_p_matches_transformers(seed, m):
    x = _logits(seed)
    _same(generation.apply_min_p(x, m), MinPLogitsWarper(m)(None, x.clone()))


@pytest.mark.parametrize("penalty", [0.8, 1.3, 2.0])
def test_repetition_penalty_matches_transformers(penalty):
    x = _logits(7)[:1]
    context = [3, 17, 17, 200, 499]
    ref = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([context]), x.clone())
    _same(generation.apply_repetition_penalty(x, context, penalty), ref)


def test_filters_compose_in_transformers_order():
    x = _logits(11)
    s = generation.DecodingSettings(temperature=0.8, top_k=40, top_p=0.9, min_p=0.05)
    ref = x.clone()
    for w in (
        TemperatureLogitsWarper(0.8),
        TopKLogitsWarper(40),
        TopPLogitsWarper(0.9),
        MinPLogitsWarper(0.05),
    ):
        ref = w(None, ref)
    _same(generation.filter_logits(x, s), ref)


def test_higher_temperature_raises_entropy():
    x = _logits(3)[0]
    cold = d.next_token_view(x, generation.DecodingSettings(temperature=0.5))
    hot = d.next_token_view(x, generation.DecodingSettings(temperature=1.5))
    assert hot.entropy_after > cold.entropy_after


def test_one_seed_gives_one_output(lm):
    ids = lm.tokenizer(PROMPT)["input_ids"]
    s = generation.DecodingSettings(temperature=1.2, top_k=50, max_new_tokens=8, seed=42)
    a = [x.token_id for x in generation.generate_stream(lm, ids, s)]
    b = [x.token_id for x in generation.generate_stream(lm, ids, s)]
    assert a == b


@pytest.mark.parametrize("beams", [2, 3])
def test_beam_search_equals_generate(lm, beams):
    ids = lm.tokenizer("Once upon a time, there was a")["input_ids"]
    ours = d.beam_search(lm, ids, num_beams=beams, max_new_tokens=6)
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([ids]),
            num_beams=beams,
            do_sample=False,
            max_new_tokens=6,
            num_return_sequences=beams,
            early_stopping=False,
            length_penalty=1.0,
            pad_token_id=lm.tokenizer.eos_token_id,
        )
    assert list(ours.sequences[0]) == ref[0, len(ids) :].tolist()
    assert {tuple(s) for s in ours.sequences} == {tuple(r[len(ids) :].tolist()) for r in ref}
    assert len(ours.tree) == beams * 6


def test_beam_search_with_eos_equals_generate_and_reads_the_prompt_once(lm):
    from core.runtime.models import LoadedModel

    class Recording:  # delegates to the shared model, recording each call's input shape
        def __init__(self, model):
            self._model, self.shapes = model, []

        def __call__(self, input_ids, **kw):
            self.shapes.append(tuple(input_ids.shape))
            return self._model(input_ids, **kw)

        def __getattr__(self, name):
            return getattr(self._model, name)

    messages = [{"role": "user", "content": "Say hi."}]
    ids = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    rec = Recording(lm.model)
    ours = d.beam_search(
        LoadedModel(lm.model_id, rec, lm.tokenizer, lm.source), ids, num_beams=4, max_new_tokens=14
    )
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([ids]),
            num_beams=4,
            do_sample=False,
            max_new_tokens=14,
            num_return_sequences=4,
            early_stopping=False,
            length_penalty=1.0,
            pad_token_id=lm.tokenizer.eos_token_id,
        )
    eos = lm.tokenizer.eos_token_id
    strip = [tuple(t for t in r[len(ids) :].tolist() if t != eos) for r in ref]
    assert [tuple(t for t in s if t != eos) for s in ours.sequences][0] == strip[0]
    assert rec.shapes[0] == (1, len(ids))  # the prompt is read once...
    assert all(shape[1] == 1 for shape in rec.shapes[1:])  # ...then one token per beam


# --- what page 19 shows: drawable tokens, entropy, the strategies at the page's defaults ------


def test_drawable_tokens_are_those_a_float32_sampler_can_reach():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5000, generator=g) * 4
    cold = generation.filter_logits(logits, generation.DecodingSettings(temperature=0.05))
    probs = cold.softmax(-1)
    drawable = d.drawable_tokens(cold)
    assert drawable == int((probs > 0).sum()) and 1 < drawable < 200  # no filter removed any
    assert int(torch.isfinite(cold).sum()) == 5000  # what the page counted before
    draws = torch.tensor([generation.sample_token(probs, g) for _ in range(5_000)])
    assert bool((probs[draws] > 0).all())  # nothing outside the drawable set is ever drawn
    view = d.next_token_view(logits, generation.DecodingSettings(temperature=0.05))
    assert view.survivors == drawable
    assert d.next_token_view(logits, generation.DecodingSettings(temperature=1.0)).survivors == 5000


def test_sample_token_draws_the_distribution_it_is_given():
    """Inverse-CDF draws match the probabilities (chi-square) as torch.multinomial's do."""
    from scipy.stats import chisquare

    g = torch.Generator().manual_seed(1)
    probs = torch.tensor([0.5, 0.0, 0.25, 0.125, 0.0625, 0.0625])
    n = 20_000
    ours = torch.bincount(
        torch.tensor([generation.sample_token(probs, g) for _ in range(n)]), minlength=6
    )
    ref = torch.bincount(torch.multinomial(probs, n, replacement=True, generator=g), minlength=6)
    assert int(ours[1]) == 0 == int(ref[1])  # a zero-probability token is never drawn
    keep = probs > 0
    expected = (probs[keep] * n).numpy()
    assert chisquare(ours[keep].numpy(), expected).pvalue > 1e-3
    assert chisquare(ref[keep].numpy(), expected).pvalue > 1e-3
    assert generation.sample_token(torch.tensor([0.0, 0.0, 1.0]), g) == 2


def test_entropy_of_a_single_token_is_never_negative_zero():
    from components.decoding import fixed

    one_hot = torch.full((100,), float("-inf"))
    one_hot[3] = 0.0
    h = d.entropy_bits(one_hot)
    assert h == 0.0 and str(h) == "0.0"
    assert fixed(h) == "0.00" and fixed(-0.0) == "0.00" and fixed(-0.004) == "0.00"
    assert fixed(-0.004, signed=True) == "+0.00" and fixed(-0.5, signed=True) == "-0.50"
    view = d.next_token_view(torch.randn(50), generation.GREEDY)
    assert view.survivors == 1 and fixed(view.entropy_after) == "0.00"


def test_repetition_penalty_covers_generated_tokens(lm):
    """The help text says generated tokens are penalised too: the context grows each step."""
    ids = lm.tokenizer("one two one two one two", add_special_tokens=False)["input_ids"]
    s = generation.DecodingSettings(temperature=0, repetition_penalty=2.0, max_new_tokens=3)
    steps = generation.generate_text(lm, ids, s)
    with torch.inference_mode():
        logits = lm.model(torch.tensor([ids + [steps[0].token_id]])).logits[0, -1]
    expected = int(generation.filter_logits(logits, s, ids + [steps[0].token_id]).argmax())
    assert steps[1].token_id == expected
    neg = torch.tensor([-2.0, 3.0])
    assert generation.apply_repetition_penalty(neg, [0, 1], 2.0).tolist() == [-4.0, 1.5]


def test_page_defaults_make_every_strategy_a_different_sampler():
    from components.decoding import PAGE_DEFAULTS, strategies

    s = PAGE_DEFAULTS
    plan = strategies(s, s.top_k, s.top_p)
    settings = list(plan.values())
    assert len(plan) == 5 and len(set(settings)) == 5  # frozen dataclasses compare by value


def test_beams_are_shown_from_where_they_part_and_tree_labels_fit_their_column():
    from components.decoding import beam_lines, beam_tree_chart
    from core.decoding import BeamNode, BeamResult

    class Tok:
        def decode(self, ids, clean_up_tokenization_spaces=False):
            return "".join(f" w{i}" for i in ids)

    res = BeamResult(
        sequences=((1, 2, 3, 4), (1, 2, 3, 5), (1, 2, 6)),
        scores=(-0.5, -0.6, -0.7),
        tree=tuple(BeamNode(s, 0, 0 if s else -1, s + 1, f" w{s}", -s) for s in range(4)),
    )
    shared, lines = beam_lines(res, Tok())
    assert shared == " w1 w2"  # the common start once, then each beam from where it differs
    assert [ln.split("…", 1)[1] for ln in lines] == [" w3 w4", " w3 w5", " w6"]
    layer = beam_tree_chart(res, Tok()).to_dict()["layer"][1]
    assert "width / 4" in layer["mark"]["limit"]["expr"]  # 4 steps share the plot's width


@pytest.fixture(scope="module")
def dec_page():
    return open_page("pages/19_decoding.py")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def _distribution(at):
    df = chart_data(at, "stage", "rank")
    return df[df["stage"] == "after filters"].sort_values("rank")


def _filters_off(at) -> None:
    at.slider(key="decoding.top_p").set_value(1.0).run()
    at.slider(key="decoding.min_p").set_value(0.0).run()


def _reset_to_defaults(at) -> None:
    from components.decoding import PAGE_DEFAULTS as D

    at.slider(key="decoding.temperature").set_value(D.temperature).run()
    at.slider(key="decoding.top_k").set_value(D.top_k).run()
    at.slider(key="decoding.top_p").set_value(D.top_p).run()
    at.slider(key="decoding.min_p").set_value(D.min_p).run()
    at.slider(key="decoding.repetition").set_value(D.repetition_penalty).run()


def test_decoding_slider_labels(dec_page):
    labels = " ".join(s.label for s in dec_page.slider)
    for word in ("Temperature", "Top-k", "Top-p", "Min-p"):
        assert word in labels


def test_temperature_changes_distribution_and_entropy(dec_page):
    at = dec_page
    _filters_off(at)  # the page starts with top-p and min-p on
    at.slider(key="decoding.temperature").set_value(0.5).run()
    cold_entropy = float(_metric(at, "Entropy after").split()[0])
    cold = _distribution(at)["probability"].tolist()
    at.slider(key="decoding.temperature").set_value(1.5).run()
    hot_entropy = float(_metric(at, "Entropy after").split()[0])
    hot = _distribution(at)["probability"].tolist()
    assert hot_entropy > cold_entropy
    assert hot[0] < cold[0]  # the top token loses probability when the distribution flattens
    at.slider(key="decoding.temperature").set_value(1.0).run()


def test_top_k_top_p_min_p_remove_tokens(dec_page):
    at = dec_page
    _filters_off(at)
    at.slider(key="decoding.top_k").set_value(5).run()
    assert _metric(at, "Tokens that can be drawn") == "5"
    assert (_distribution(at)["probability"] > 0).sum() == 5
    at.slider(key="decoding.top_k").set_value(0).run()
    at.slider(key="decoding.top_p").set_value(0.3).run()
    kept_p = int(_metric(at, "Tokens that can be drawn").replace(",", ""))
    at.slider(key="decoding.top_p").set_value(1.0).run()
    at.slider(key="decoding.min_p").set_value(0.2).run()
    kept_min = int(_metric(at, "Tokens that can be drawn").replace(",", ""))
    at.slider(key="decoding.min_p").set_value(0.0).run()
    everything = int(_metric(at, "Tokens that can be drawn").replace(",", ""))
    assert kept_p < everything and kept_min < everything


def _start(at, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def _side_by_side():
    """The latest side-by-side result in the job store (rows, beam search)."""
    from components.jobs import job_store

    keys = [k for k in job_store().results.sizes() if k[:2] == ("decoding", "side_by_side")]
    return job_store().get(keys[-1]).value


def test_side_by_side_is_reproducible_and_greedy_matches_the_core_loop(dec_page, lm):
    from dataclasses import replace

    from core.runtime.generation import GREEDY, generate_text

    at = dec_page
    _reset_to_defaults(at)
    promised = next(c.value for c in at.caption if c.value.startswith("Press the button"))
    runs = int(re.search(r"run all (\d+)", promised).group(1))
    at.slider(key="decoding.new_tokens").set_value(6).run()
    at.slider(key="decoding.beams").set_value(2).run()
    _start(at, "Generate side by side").click().run(timeout=600)
    assert not at.exception
    first = pd.DataFrame(_side_by_side()[0])
    assert len(first) == runs == 6 and len(at.dataframe[0].value) == runs
    # at the page's default sliders the five samplers differ, so their texts differ too
    assert first["output"][:5].nunique() == 5, first["output"].tolist()
    # each continuation exactly as generated, after "…" for the prompt: its leading space kept
    # (st.text strips a text's leading whitespace, so the bare output lost it)
    shown = [t.value for t in at.text]
    assert all("…" + out.rstrip() in shown for out in first["output"] if out.strip())
    assert any(out.startswith(" ") for out in first["output"])
    ids = _side_by_side()[1]
    assert ids.sequences  # beam search returned sequences and a tree chart was drawn
    at.run()  # the next rerun offers to run it again
    _start(at, "Run again").click().run(timeout=600)  # forgets the result, generates again
    again = pd.DataFrame(_side_by_side()[0])
    assert again["output"].tolist() == first["output"].tolist()
    prompt_ids = lm.tokenizer(at.session_state["shared.prompt"], add_special_tokens=False)[
        "input_ids"
    ]
    steps = generate_text(lm, prompt_ids, replace(GREEDY, max_new_tokens=6))
    greedy = lm.tokenizer.decode([s.token_id for s in steps], clean_up_tokenization_spaces=False)
    assert first.loc[first.strategy == "Greedy", "output"].iloc[0] == greedy


def test_drawable_count_entropy_and_penalty_help_tell_the_truth(dec_page):
    at = dec_page
    assert "generated" in at.slider(key="decoding.repetition").help
    assert "multiplied" in at.slider(key="decoding.repetition").help
    at.slider(key="decoding.top_p").set_value(1.0).run()
    at.slider(key="decoding.min_p").set_value(0.0).run()
    at.slider(key="decoding.temperature").set_value(0.05).run()
    shown = int(_metric(at, "Tokens that can be drawn").replace(",", ""))
    assert 1 <= shown < 1000  # not the whole 49,152-token vocabulary: the rest underflow to 0
    at.slider(key="decoding.temperature").set_value(0.0).run()
    assert _metric(at, "Tokens that can be drawn") == "1"
    assert _metric(at, "Entropy after") == "0.00 bits"
    assert not any(m.value.startswith("-0.00") for m in at.metric)
    _reset_to_defaults(at)


def test_decoding_survives_bad_prompts(dec_page):
    at = dec_page
    for text in ["", *BAD_INPUTS[::2]]:
        at.sidebar.text_area(key="sidebar.prompt").set_value(text).run()
        assert not at.exception, text
    at.sidebar.text_area(key="sidebar.prompt").set_value("word " * 4000).run()
    assert not at.exception
    assert any("first 256" in i.value for i in at.info)  # the 20k prompt was cut, with a note


def test_strategies_table_shows_three_decimals_and_no_none_for_beam_search():
    # The side-by-side table read "0.42" under "0.414" and "None" for beam search.
    from components.decoding import results_frame

    rows = [
        {
            "strategy": "Greedy",
            "output": "a",
            "tokens": 24,
            "mean p of chosen tokens": 0.414,
            "settings": "argmax",
        },
        {
            "strategy": "All your filters",
            "output": "b",
            "tokens": 24,
            "mean p of chosen tokens": 0.42,
            "settings": "T=1.30",
        },
        {
            "strategy": "Beam search (width 3)",
            "output": "c",
            "tokens": 24,
            "mean p of chosen tokens": None,
            "settings": "best of 3",
        },
    ]
    df = results_frame(rows)
    assert list(df["mean p of chosen tokens"]) == ["0.414", "0.420", "–"]
    assert "output" not in df.columns


def test_distribution_legend_names_the_stages_without_sort_digits():
    # The legend read "1 before filters", "2 after filters" (digits that only forced an order).
    from components.decoding import distribution_chart

    view = d.NextTokenView((1, 2), (0.6, 0.4), (1.0, 0.0), 1, 0.97, 0.0)
    spec = distribution_chart(view, ["a", "b"]).to_dict()
    enc = spec["encoding"]
    assert enc["color"]["scale"]["domain"] == ["before filters", "after filters"]
    assert enc["yOffset"]["sort"] == ["before filters", "after filters"]
    stages = {r["stage"] for r in spec["datasets"][next(iter(spec["datasets"]))]}
    assert stages == {"before filters", "after filters"}


def test_beam_tree_labels_take_the_theme_ink_off_the_winning_path():
    # Tokens off the winning path were drawn in a fixed #495057: unreadable on the dark theme.
    from components.charts import TEXT_INK, readable
    from components.decoding import beam_tree_chart
    from core.decoding import BeamNode, BeamResult

    class Tok:
        def decode(self, ids, clean_up_tokenization_spaces=False):
            return "".join(f" w{i}" for i in ids)

    tree = (BeamNode(0, 0, -1, 1, " w0", 0.0), BeamNode(0, 1, -1, 2, " x0", -1.0))
    res = BeamResult(sequences=((1,), (2,)), scores=(-0.1, -1.0), tree=tree)
    spec = readable(beam_tree_chart(res, Tok()), "dark").to_dict()
    texts = [lay for lay in spec["layer"] if lay["mark"]["type"] == "text"]
    assert len(texts) == 2
    off_path = [t for t in texts if "color" not in t["mark"]]
    assert len(off_path) == 1 and "color" not in off_path[0].get("encoding", {})
    assert spec["config"]["text"]["color"] == TEXT_INK["dark"]  # what the unstyled labels take
    assert "#495057" not in str(spec)
