"""AppTest of pages 06 (Tokenization) and 19 (Decoding), on the real embedded model."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from apptest_util import chart_data, open_page

from core.tokenization import openai_tokenizer, tokenize

BAD_INPUTS = [
    "   \n\t ",
    "x" * 20_000,
    "I love 🍕 👩🏽‍💻",
    "我喜欢机器学习。",
    "مرحبا بالعالم",
    "zero\u200bwidth\u200d",
    "<script>alert('x')</script><b>bold</b>",
    "$x^2$ and $$\\frac{a}{b}$$ **not bold** # heading",
]


@pytest.fixture(scope="module")
def tok_page():
    return open_page("pages/06_tokenization.py")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_tokenization_field_and_counts_match_references(tok_page):
    at = tok_page
    field = at.text_area(key="tokenization.text")
    assert "text" in field.label.lower()
    field.set_value("hello world, tokenizers!").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 5
    for name in ("gpt2", "cl100k_base", "o200k_base"):
        expected = tokenize(openai_tokenizer(name), "hello world, tokenizers!").count
        assert int(table.loc[table.tokenizer == name, "tokens"].iloc[0]) == expected
    html = " ".join(h.proto.body for h in at.get("html"))
    for i in tokenize(openai_tokenizer("o200k_base"), "hello world, tokenizers!").pieces:
        assert f">{i.id}<" in html  # every token's id is on the page


def test_emoji_shows_byte_fallback_pieces(tok_page):
    at = tok_page
    at.text_area(key="tokenization.text").set_value("🍕🍕").run()
    table = at.dataframe[0].value
    partial = table["pieces that are part of a character"]
    assert int(partial.iloc[0]) >= 2  # SmolLM2 splits the emoji into byte pieces


def test_more_merges_fewer_tokens(tok_page):
    at = tok_page
    at.text_area(key="tokenization.text").set_value("The children read books by the river.").run()
    at.slider(key="tokenization.vocab_size").set_value(260).run()
    few = int(_metric(at, "Your text in tokens").replace(",", ""))
    at.slider(key="tokenization.vocab_size").set_value(700).run()
    many = int(_metric(at, "Your text in tokens").replace(",", ""))
    assert many < few
    merges = at.dataframe[1].value
    assert len(merges) > 100 and list(merges["rank"][:3]) == [1, 2, 3]


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_tokenization_survives_bad_input(tok_page, text):
    at = tok_page
    at.text_area(key="tokenization.text").set_value(text).run()
    assert not at.exception
    html = " ".join(h.proto.body for h in at.get("html"))
    assert "<script>" not in html and "<b>bold" not in html


def test_empty_text_gives_a_message(tok_page):
    at = tok_page
    at.text_area(key="tokenization.text").set_value("").run()
    assert not at.exception
    assert any("Type some text" in i.value for i in at.info)


def test_typed_control_tokens_are_text_in_counts_and_injection_in_the_chat(tok_page, lm):
    at = tok_page
    at.selectbox(key="tokenization.example").set_value(
        "Typed control tokens (prompt injection)"
    ).run()
    assert not at.exception
    text = at.text_area(key="tokenization.text").value
    assert "<|endoftext|>" in text and "<|im_start|>" in text
    table = at.dataframe[0].value
    for name in ("gpt2", "cl100k_base", "o200k_base"):  # (tiktoken agrees: test_tokenization)
        ordinary = tokenize(openai_tokenizer(name), text)
        assert int(table.loc[table.tokenizer == name, "tokens"].iloc[0]) == ordinary.count
    assert 50256 not in [p.id for p in tokenize(openai_tokenizer("gpt2"), text).pieces]
    assert any("encode_ordinary" in w.value for w in at.warning)
    specials = next(d.value for d in at.dataframe if "control ids produced" in d.value.columns)
    assert (
        "50256 <|endoftext|>" in specials.set_index("tokenizer").loc["gpt2", "control ids produced"]
    )
    start = lm.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert any(w.value.startswith("Prompt injection") for w in at.warning)
    chat_html = " ".join(h.proto.body for h in at.get("html"))
    assert "control token typed in a message (injected)" in chat_html
    assert f">{start}<" in chat_html
    assert not any("never produce" in m.value for m in at.markdown)


@pytest.fixture(scope="module")
def dec_page():
    return open_page("pages/19_decoding.py")


def _distribution(at):
    df = chart_data(at, "stage", "rank")
    return df[df["stage"] == "2 after filters"].sort_values("rank")


def test_decoding_slider_labels(dec_page):
    labels = " ".join(s.label for s in dec_page.slider)
    for word in ("Temperature", "Top-k", "Top-p", "Min-p"):
        assert word in labels


def _filters_off(at) -> None:
    at.slider(key="decoding.top_p").set_value(1.0).run()
    at.slider(key="decoding.min_p").set_value(0.0).run()


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
    _start(at, "Run again").click().run()  # forget the shared result...
    _start(at, "Generate side by side").click().run(timeout=600)  # ...and generate again
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


def _reset_to_defaults(at) -> None:
    from components.decoding import PAGE_DEFAULTS as D

    at.slider(key="decoding.temperature").set_value(D.temperature).run()
    at.slider(key="decoding.top_k").set_value(D.top_k).run()
    at.slider(key="decoding.top_p").set_value(D.top_p).run()
    at.slider(key="decoding.min_p").set_value(D.min_p).run()
    at.slider(key="decoding.repetition").set_value(D.repetition_penalty).run()


def test_decoding_survives_bad_prompts(dec_page):
    at = dec_page
    for text in ["", *BAD_INPUTS[::2]]:
        at.sidebar.text_area(key="sidebar.prompt").set_value(text).run()
        assert not at.exception, text
    at.sidebar.text_area(key="sidebar.prompt").set_value("word " * 4000).run()
    assert not at.exception
    assert any("first 256" in i.value for i in at.info)  # the 20k prompt was cut, with a note
