"""19 Decoding Strategies: the next-token distribution under temperature, top-k, top-p, min-p, and strategies side by side."""

from __future__ import annotations

import streamlit as st

from components import presenter
from components.decoding import (
    PAGE_DEFAULTS,
    current_settings,
    distribution_section,
    results_section,
    side_by_side_job,
    strategies,
)
from components.frame import intro, page_frame, presenter_prompt, show_code
from components.models import current_model_id, get_prompt, get_trace
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from core.runtime import generation
from core.shared.chat import has_template, render

page_frame()

with intro():
    st.markdown(
        "After reading the prompt the model outputs a score (logit) for **every** token in its "
        "vocabulary; softmax turns them into probabilities. *Decoding* decides which token to take. "
        "**Greedy** always takes the most likely one; **sampling** draws at random, after reshaping "
        "the distribution: **temperature** divides the logits (low = sharper, high = flatter), "
        "**top-k** keeps the k most likely tokens, **top-p** (nucleus) keeps the smallest set whose "
        "probabilities add up to p, and **min-p** drops tokens less likely than min-p times the top "
        "one. **Beam search** keeps several candidate continuations and picks the most probable "
        "whole sequence. Move a slider and watch which tokens survive."
    )
    st.latex(r"p_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}")

lm, _ = model_page(prompt=False)  # this page says itself what an empty prompt means
model_id = current_model_id()
prompt = get_prompt()
if not prompt.strip():
    st.info(
        "The shared prompt in the sidebar is empty, so the model predicts the first token "
        "of a text from nothing but its start token."
    )
if presenter.is_on():  # the prompt box (the sidebar is folded) beside the template's switch
    box, chat_col = st.columns([3, 2], vertical_alignment="center")
    with box:
        presenter_prompt()
    seen_col = chat_col
else:
    chat_col, seen_col = st.columns(2, vertical_alignment="center")
use_chat = chat_col.toggle(
    "Wrap the prompt in the chat template",
    key="decoding.chat",
    disabled=not has_template(lm.tokenizer),
    help="As a user message, the way a chat assistant reads it.",
)
text = prompt
if use_chat:
    text = render(lm.tokenizer, [{"role": "user", "content": prompt}])
trace = get_trace(text)
context_ids = tuple(int(i) for i in trace.ids)
with seen_col.expander(f"The model sees {trace.length} tokens", expanded=False):
    st.text(lm.tokenizer.decode(list(context_ids), clean_up_tokenization_spaces=False)[-3000:])
note_truncation(trace.truncated_from, trace.length)

D = PAGE_DEFAULTS
distribution_section(lm, trace, context_ids)

st.subheader("Strategies side by side")
st.markdown(
    "Each strategy continues the same prompt from the **same random seed**, using the "
    "sliders above (top-k 50 when top-k is off). Same seed, same settings: same text. "
    "“…” stands for the prompt, so a continuation's first space shows."
)
g1, g2, g3 = st.columns(3)
n_runs = len(strategies(current_settings(), 0, 1.0)) + 1  # the samplers, then beam search
new_tokens = g1.slider(
    "New tokens",
    4,
    48,
    D.max_new_tokens,
    key="decoding.new_tokens",
    help=f"Capped at 48 to keep the {n_runs} runs short on a laptop CPU.",
)
seed = g2.number_input("Seed", 0, 2**31 - 1, 0, key="decoding.seed")
beams = g3.slider("Beam width", 1, 6, 3, key="decoding.beams")

out = side_by_side_job(model_id, context_ids, current_settings(new_tokens, int(seed)), int(beams))
if out is not None:
    results_section(lm, *out)
else:
    st.caption(
        f"Press the button to run all {n_runs}: the {n_runs - 1} sampling strategies, "
        "then beam search."
    )

show_code(generation.filter_logits, generation.apply_top_p, generation.generate_stream)

check_yourself()
