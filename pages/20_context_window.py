"""20 Context Window: the prompt against the window, time, memory and KV cache against length, a needle test."""

from __future__ import annotations

import streamlit as st

from components import context_window as cw
from components.charts import draw_chart
from components.frame import intro, page_frame, presenter_prompt, show_code
from components.models import get_prompt
from components.preamble import model_page
from components.questions import check_yourself
from components.tokens import token_strip
from core import context_window
from core import inference_loop as inf
from core.inspect.anatomy import geometry

SHOWN_CAP = 400  # tokens drawn as chips

page_frame()
with intro():
    st.markdown(
        "A model can only attend to a fixed number of tokens, its **context window**: positions "
        "beyond what it was trained on are unknown to it. Longer inputs cost more: every token "
        "attends to every earlier one, so each layer builds a T × T table of attention scores "
        "(it grows as n²), and the KV cache grows by a fixed number of bytes per token. A prompt "
        "that does not fit must be **truncated**, and what you cut decides what the model can "
        "still see. Finally, fitting in the window is not the same as *using* it: the "
        "needle-in-a-haystack probe tests whether the model finds one fact hidden in filler, "
        "among similar facts that it must not confuse with it."
    )

lm, _ = model_page(prompt=False)  # an empty prompt gets this page's own filler text below
model_id = lm.model_id
geo = geometry(lm.config)
context = inf.context_length(lm.config)
width = inf.model_dtype_bytes(lm.model)
presenter_prompt()  # the sidebar's prompt box, in the page when the sidebar is folded
prompt = get_prompt()
ids = cw.cached_token_count(model_id, prompt)
if not ids:
    st.info(
        "The shared prompt is empty: write something in the sidebar to see it truncated. "
        "Until then the page uses a short filler text."
    )
    ids = tuple(context_window.filler_ids(lm.tokenizer, 24))

st.subheader("Your prompt against the context window")
c1, c2 = st.columns([2, 3])
budget = c1.slider(
    "Token budget",
    4,
    512,
    12,
    key="context_window.budget",
    bind="query-params",
    help="How many tokens you allow the model to see (at most 512 here).",
)
strategy = c2.radio(
    "Truncation",
    list(context_window.STRATEGIES),
    format_func=context_window.STRATEGIES.get,
    key="context_window.strategy",
    horizontal=True,
    bind="query-params",
)
cut = context_window.truncate(ids, budget, strategy)
draw_chart(cw.budget_chart(len(ids), context, budget))
m1, m2, m3, m4 = st.columns(4)
m1.metric("Prompt tokens", f"{len(ids):,}")
m2.metric("Context length", f"{context:,}", help="From the model's config.")
m3.metric("Share of the window", f"{len(ids) / context:.2%}")
m4.metric("Tokens kept / dropped", f"{len(cut.kept):,} / {cut.dropped:,}")
if len(ids) > context:
    st.warning(
        f"This prompt is longer than the model's {context:,}-token context: "
        "it has to be truncated before the model can read it."
    )
kept = set(cut.kept_positions)
shown = range(min(len(ids), SHOWN_CAP))
token_strip(
    [lm.tokenizer.decode([ids[i]]) for i in shown],
    values=[0.55 if i in kept else -0.55 for i in shown],
    titles=["kept" if i in kept else "dropped" for i in shown],
)
st.caption(
    "Orange tokens are kept, blue ones dropped"
    + (f" (first {SHOWN_CAP} tokens drawn)." if len(ids) > SHOWN_CAP else ".")
)
if cut.dropped == 0:
    st.info(
        f"The prompt ({len(ids)} tokens) fits in the budget of {budget}: nothing is cut. "
        "Lower the budget or lengthen the prompt."
    )
st.markdown("**What the model then sees**")
st.text(lm.tokenizer.decode(list(cut.kept))[:4000] or "(nothing)")


cw.cost_section(lm, geo, context, width)
cw.kv_sizes_section(lm)
cw.needle_section(lm, context)
show_code(
    context_window.truncate,
    inf.kv_cache_bytes,
    context_window.forward_cost,
    context_window.draw_facts,
    context_window.haystack,
    context_window.needle_probe,
)

check_yourself()
