from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components import multi_head as mh
from components.attention import attention_trace
from components.charts import draw_chart, draw_panels
from components.frame import page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from components.tokens import visible
from core.attention import (
    ATTENTION_CAP,
    HEAD_LABEL_THRESHOLD,
    INDUCTION_HALF,
    HeadProfile,
    head_roles,
    pattern_scores,
)
from core.inspect.anatomy import geometry, supports
from core.inspect.interventions import heads_switched_off, next_token_change

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


@st.fragment
def heads_view() -> None:
    layer = st.slider("Layer", 0, g.n_layers - 1, key="multi_head.layer", bind="query-params")
    draw_panels(
        mh.small_multiples_frame(
            trace.attentions[layer], mh.head_titles(profile, layer, g.n_heads)
        ),
        "head",
        mh.head_small_chart,
        columns=min(5, g.n_heads),
    )
    st.caption("Each map: query (rows, down) x key (columns), colour 0 to 1 as on page 08.")
    c1, c2 = st.columns([2, 3])
    with c1:
        st.markdown(
            "**Every head of every layer, by measured role** (the box marks this layer; "
            "paler = weaker)"
        )
        draw_chart(mh.head_map_chart(mh.profile_frame(profile), layer))
    with c2:
        order = ", then ".join(HeadProfile.PRIORITY)
        st.markdown(
            f"How the roles are measured: on {profile.seeds} random sequences of "
            f"{INDUCTION_HALF} tokens, each repeated once (one batch, the same texts for every "
            "role, not your prompt), a head's mean attention from each token (position 2 "
            "onward) to the previous token, to the first token and to itself; its induction "
            "score is the attention each token of the second copy pays to the token that "
            "followed its first copy. Scores are averaged over the sequences; the table also "
            "shows the lowest and highest sequence's induction score. The label is the first "
            f"of {order} whose score is at least {HEAD_LABEL_THRESHOLD:.0%}, else 'mixed'."
        )
        table = mh.profile_frame(profile).query("layer == @layer").set_index("head")
        st.dataframe(table.drop(columns=["layer", "strength"]).round(3), width="stretch")

    st.subheader("Switch heads off")
    if not supports(lm.model, "heads"):
        st.warning(
            f"{lm.model_id}: switching heads off needs a Llama-style (o_proj) or "
            "GPT-2-style (c_proj) attention module."
        )
        return
    off = st.multiselect(
        f"Heads of layer {layer} to switch off",
        list(range(g.n_heads)),
        key="multi_head.off",
        max_selections=g.n_heads,
    )
    if not off:
        st.info(
            "Pick one or more heads above: their output is replaced by zeros before the "
            "output projection, for this one forward pass only."
        )
        return
    change = mh.cached_ablation(lm.model_id, text, layer, tuple(sorted(off)))
    tokens = [visible(lm.tokenizer.decode([i])) for i in change.token_ids]
    df = pd.DataFrame(
        {
            "token": tokens * 2,
            "probability": np.concatenate([change.base, change.ablated]),
            "heads": ["all heads on"] * len(tokens) + [f"heads {off} off"] * len(tokens),
        }
    )
    m1, m2 = st.columns(2)
    m1.metric(
        "KL(before ‖ after)",
        f"{change.kl_bits:.4f} bits",
        help="How far the whole next-token distribution moved.",
    )
    m2.metric("top next token", "changed" if change.top_changed else "unchanged")
    draw_chart(mh.next_token_change_chart(df))
    st.caption(
        "The shared model is untouched: the switch-off is a hook that exists only during "
        "this page's forward pass and only in this session's thread."
    )


heads_view()

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
