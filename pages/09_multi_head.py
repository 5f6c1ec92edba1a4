"""09 Multi-Head Attention: every head of a layer side by side, heads switched off, grouped-query attention."""

from __future__ import annotations

import streamlit as st

from components import multi_head as mh
from components.attention import attention_trace
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from core.attention import ATTENTION_CAP
from core.inspect.anatomy import geometry
from core.inspect.interventions import heads_switched_off, next_token_change
from core.multi_head import HeadProfile, head_roles, pattern_scores

page_frame()
lm, text = model_page()
g = geometry(lm.config)
shared_kv = (
    f"In classic multi-head attention each head also has its own W_K and W_V; {lm.model_id} "
    f"shares them: each group of {g.group_size} query heads reads the same keys and values "
    "(grouped-query attention, at the bottom of the page)."
    if g.group_size > 1
    else f"In {lm.model_id} each head also has its own W_K and W_V (classic multi-head attention)."
)
with intro():
    st.markdown(
        "A layer does not run one attention but several side by side: each **head** has its own "
        "small W_Q, works in its own slice of the vector, and the heads' outputs are concatenated "
        f"and mixed by one output matrix W_O. {shared_kv} Different heads learn different jobs: "
        "looking at the previous token, parking attention on the first token (a 'sink'), looking "
        "at itself, or copying what followed an earlier occurrence of the current token "
        "(induction). Below, every head of a layer is drawn at once on your prompt, named after "
        "the job it is measured doing. Switch heads off to see how much the next-token prediction "
        "depends on them."
    )
trace = attention_trace(text)
note_truncation(trace.truncated_from, trace.length)
st.caption(f"Uses at most the first {ATTENTION_CAP} tokens of the prompt (here {trace.length}).")
profile = mh.cached_profile(lm.model_id)
if st.session_state.get("multi_head.layer", 0) > g.n_layers - 1:
    st.session_state["multi_head.layer"] = g.n_layers - 1
if "multi_head.off" in st.session_state:  # drop heads a smaller model does not have
    st.session_state["multi_head.off"] = [
        h for h in st.session_state["multi_head.off"] if h < g.n_heads
    ]


mh.heads_section(lm, g, trace, profile, text)

st.subheader("Grouped-query attention, read from the config")
if g.n_kv_heads < g.n_heads:
    st.markdown(
        f"**{lm.model_id}** has {g.n_heads} query heads but only {g.n_kv_heads} key/value heads: "
        f"each group of {g.group_size} query heads asks its own questions of the same keys and "
        f"values. Per token and layer the KV cache stores {2 * g.n_kv_heads * g.head_dim} numbers "
        f"instead of {2 * g.n_heads * g.head_dim}, {g.group_size}x less memory for long texts."
    )
else:
    st.markdown(
        f"**{lm.model_id}** gives every one of its {g.n_heads} query heads its own key/value "
        "head (classic multi-head attention, no grouping); pick SmolLM2 to see grouped-query "
        "attention."
    )
draw_chart(mh.gqa_chart(g.n_heads, g.n_kv_heads))
st.caption(
    f"head_dim {g.head_dim} x {g.n_heads} heads = {g.n_heads * g.head_dim} "
    f"(d_model {g.d_model}); {g.n_layers} layers."
)
show_code(pattern_scores, head_roles, HeadProfile.label, heads_switched_off, next_token_change)

check_yourself()
