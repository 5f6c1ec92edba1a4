"""LLM Explorer home page: the concepts that have pages, as cards in their sections."""

from __future__ import annotations

import streamlit as st

from components.frame import safe_page_link, sidebar
from components.presenter import apply as presenter_css
from components.presenter import sidebar_state
from core.concepts import CONCEPTS, available_concepts, by_section
from core.runtime.model_ids import embedded_package_dir

st.set_page_config(
    page_title="LLM Explorer", page_icon="🧭", layout="wide", initial_sidebar_state=sidebar_state()
)
presenter_css()
sidebar()

st.title("LLM Explorer")
WHERE = (
    "runs right here on your machine, no internet needed"
    if embedded_package_dir() is not None
    else "runs on this server, which fetches it once from the Hugging Face hub (a few "
    "hundred MB, the first time a page needs it: about half a minute)"
)
st.markdown(
    "How large language models are built, trained and deployed, one concept at a time. "
    "Every page pairs a short explanation with live controls on a real model: "
    f"**SmolLM2-135M-Instruct** {WHERE}, "
    "and pages that train something train it in front of you."
)
ready = available_concepts()
st.caption(f"{len(ready)} of {len(CONCEPTS)} concepts have a page so far. Pick one to start.")

COLUMNS = 3
for section, concepts in by_section(ready).items():
    st.subheader(section)
    for start in range(0, len(concepts), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, c in zip(cols, concepts[start : start + COLUMNS]):
            with col.container(border=True):
                st.markdown(f"**{c.number:02d}**  \n#### {c.title}")
                st.write(c.summary)
                safe_page_link(
                    c.page_file, label=f"Open page {c.number:02d}", icon=":material/arrow_forward:"
                )
