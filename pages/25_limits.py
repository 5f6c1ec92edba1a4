"""25 What LLMs Can't Do (Yet): probes of reasoning, grounding and reliability run on the model."""

from __future__ import annotations

import streamlit as st

from components.frame import intro, page_frame, show_code
from components.limits import (
    addition_section,
    capitals_section,
    counting_section,
    fictions_section,
    pronouns_section,
    rephrasing_section,
    years_section,
)
from components.models import current_model_id
from components.preamble import model_page
from components.questions import check_yourself
from core import limits as L

page_frame()
with intro():
    st.markdown(
        "A language model predicts the next token. Everything it seems to *do* (count, add, know "
        "facts, admit ignorance) is a side effect of that, and the side effects fail in ways you can "
        "measure. Each probe below runs the selected model on a fixed set of questions: answers are "
        "generated greedily (always the most likely token) and scored by parsing the text the model "
        "actually wrote; probabilities are read from its logits. Small models fail often; these are "
        "the measured failures, not examples picked to look bad. Each probe links to the page that "
        "explains its cause."
    )
model_page(prompt=False)  # load (or fall back to) the selected model before any probe runs
model_id = current_model_id()

tabs = st.tabs(
    [
        "Counting letters",
        "Adding numbers",
        "Confident errors",
        "Made-up entities",
        "Rephrasing",
        "Pronouns",
        "Knowledge cut-off",
    ]
)
sections = (
    counting_section,
    addition_section,
    capitals_section,
    fictions_section,
    rephrasing_section,
    pronouns_section,
    years_section,
)
for tab, section in zip(tabs, sections):
    with tab:
        section(model_id)

show_code(L.greedy_answer, L.parse_count, L.digit_accuracy, L.declines, L.continuation_logprobs)

check_yourself()
