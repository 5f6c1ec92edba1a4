"""08 The Attention Mechanism: one head's weights on the prompt, and the same head recomputed step by step."""

from __future__ import annotations

import numpy as np
import streamlit as st

from components import attention as ca
from components.charts import draw_chart, draw_panels, thinned_note
from components.frame import intro, page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from components.tokens import token_labels
from core.attention import ATTENTION_CAP, encoder_attention, recompute_head
from core.inspect.anatomy import geometry, supports

page_frame()
with intro():
    st.markdown(
        "Each token asks a question (its **query**), every earlier token offers a **key**, and the "
        "better they match, the more of that token's **value** flows in: softmax(QKᵀ/√d + mask). "
        "Pick a layer and a head, and click a token to see where it looks."
    )
EXPLAINED = (
    "Inside every block, each token asks a question (its **query** Q), every earlier token "
    "offers a **key** K, and the better a key matches the query, the more of that token's "
    "**value** is copied into the asking position. The match is a dot product, scaled by "
    "1/√(head size), with the future masked out so a token only sees what came before it; a "
    "softmax turns each row into weights that sum to one: "
    "softmax(QKᵀ/√d + mask). Each head of each layer learns its own questions: check the "
    "recomputation below against the model's own numbers."
)

lm, text = model_page()
trace = ca.attention_trace(text)
note_truncation(trace.truncated_from, trace.length)
g = geometry(lm.config)
for key, top in (("attention.layer", g.n_layers - 1), ("attention.head", g.n_heads - 1)):
    if st.session_state.get(key, 0) > top:  # a smaller model was picked
        st.session_state[key] = top


@st.fragment
def causal_view() -> None:
    c1, c2 = st.columns([3, 1])
    layer = c1.slider("Layer", 0, g.n_layers - 1, key="attention.layer", bind="query-params")
    head = c2.selectbox(
        "Head",
        list(range(g.n_heads)),
        key="attention.head",
        bind="query-params",
        help=f"{g.n_heads} query heads; heads in groups of {g.group_size} share one key/value head."
        if g.group_size > 1
        else None,
    )
    weights = trace.attentions[layer, head].astype(np.float32)  # (T, T)
    draw_chart(
        ca.attention_click_chart(
            ca.attention_frame(weights, trace.tokens),
            token_labels(trace.tokens),
            f"{lm.model_id.split('/')[-1]}, layer {layer}, head {head}: causal",
        ),
    )
    st.caption(
        f"Nothing above the diagonal: a token sees only what came before it. Click a "
        "cell of the heatmap to pick the query token; the bars show its row. Rows sum "
        f"to 1 (here between {weights.sum(1).min():.4f} and {weights.sum(1).max():.4f}). "
        f"At most the first {ATTENTION_CAP} tokens of the prompt (here {trace.length}). "
        + thinned_note(trace.length)
    )

    st.subheader("The same head, recomputed step by step")
    if not supports(lm.model, "heads"):
        st.warning(
            f"{lm.model_id}: this page recomputes heads for Llama-style and GPT-2-style "
            "attention modules only; the heatmaps above are the model's own."
        )
        return
    steps = ca.cached_head_steps(lm.model_id, text, layer, head)
    diff = float(np.abs(steps.weights - weights).max())
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "max |ours − model|",
        f"{diff:.1e}",
        help="The model's attention is stored as float16, hence differences near 1e-4.",
    )
    m2.metric("scale", f"{steps.scale:.4f}", help="1/√(head size) for these models")
    m3.metric("key/value head used", steps.kv_head)
    pos = (
        "RoPE rotates Q and K by each token's position"
        if steps.rope
        else (
            "positions were added to the token embeddings before the first block, so Q and K are "
            "not rotated"
        )
    )
    st.markdown(
        f"From the block's input (the residual stream entering layer {layer}): {steps.norm}, "
        f"then Q = x·W_Q and K = x·W_K for head {head} ({g.head_dim} dimensions each); {pos}. "
        "Scores are Q·Kᵀ times the scale, the causal mask sets the future to -∞, and a softmax "
        "per row gives the weights."
    )
    draw_panels(
        ca.head_steps_frame(steps, weights, trace.tokens), "panel", ca.head_step_chart, columns=2
    )
    st.caption(
        "Colour: each panel scaled by its largest absolute value (red positive, blue "
        "negative); hover for the exact numbers. Blank cells are the masked future."
    )


left, right = st.columns([3, 2], gap="large")
with left:
    causal_view()
with right:
    ca.encoder_section(text)
with st.expander("How attention is computed"):
    st.markdown(EXPLAINED)
show_code(recompute_head, encoder_attention)

check_yourself()
