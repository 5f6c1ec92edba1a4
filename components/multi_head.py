"""Multi-head attention (concept 09): every head of a layer, head roles, switching heads off,
grouped-query attention."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import HEAT, ORANGE, draw_chart, draw_panels, fitting_columns
from components.models import get_trace, load_model
from components.tokens import visible
from core import multi_head as core_multi_head
from core.attention import ATTENTION_CAP
from core.inspect import interventions
from core.inspect.anatomy import supports
from core.multi_head import HEAD_LABEL_THRESHOLD, INDUCTION_HALF, HeadProfile


def small_multiples_frame(layer_attn: np.ndarray, head_titles: list[str]) -> pd.DataFrame:
    """Every head of one layer in long form (on and below the diagonal), `head` = its title."""
    h, t, _ = layer_attn.shape
    head, q, k = np.indices((h, t, t))
    keep = k <= q
    return pd.DataFrame(
        {
            "head": np.array(head_titles)[head[keep]],
            "query": q[keep],
            "key": k[keep],
            "weight": layer_attn[keep].astype(np.float32),
        }
    )


def head_small_chart(df: pd.DataFrame, title: str, size: int = 120) -> alt.Chart:
    """One head's (query x key) map, titled by its measured role; drawn for every head with
    `charts.draw_panels(frame, "head", head_small_chart, columns=...)`. One colour domain
    (0-1) for all, so the panels compare."""
    return (
        alt.Chart(df, title=alt.Title(title, fontSize=11))
        .mark_rect()
        .encode(
            x=alt.X("key:O", axis=None),
            y=alt.Y("query:O", axis=None),
            color=alt.Color("weight:Q", scale=HEAT, legend=None),
            tooltip=[
                alt.Tooltip("head:N"),
                alt.Tooltip("query:O"),
                alt.Tooltip("key:O"),
                alt.Tooltip("weight:Q", format=".3f"),
            ],
        )
        .properties(height=size)
    )


def head_titles(profile: HeadProfile, layer: int, n_heads: int) -> list[str]:
    return [f"head {h}: {profile.label(layer, h)}" for h in range(n_heads)]


def profile_frame(profile: HeadProfile) -> pd.DataFrame:
    s = profile.scores()  # (4, L, H)
    _, n_layers, n_heads = s.shape
    layer, head = np.indices((n_layers, n_heads))
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for name, values in zip(HeadProfile.PATTERNS, s, strict=True):
        df[name] = values.ravel()
    if profile.induction_low is not None and profile.induction_high is not None:
        df["induction lowest seed"] = profile.induction_low.ravel()
        df["induction highest seed"] = profile.induction_high.ravel()
    df["role"] = [profile.label(int(r.layer), int(r.head)) for r in df.itertuples()]
    df["strength"] = s.max(axis=0).ravel()
    return df


def head_map_chart(df: pd.DataFrame, layer: int) -> alt.LayerChart:
    """Layers x heads, coloured by each head's measured role, stronger = more opaque."""
    roles = [*HeadProfile.PATTERNS, "mixed"]
    base = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("head:O"),
            y=alt.Y("layer:O", sort="descending"),
            color=alt.Color(
                "role:N",
                scale=alt.Scale(
                    domain=roles, range=["#1f77b4", "#7f7f7f", "#2ca02c", "#d62728", "#eeeeee"]
                ),
                legend=alt.Legend(orient="bottom", columns=fitting_columns(roles), title=None),
            ),
            opacity=alt.Opacity(
                "strength:Q", scale=alt.Scale(domain=[0, 1], range=[0.25, 1]), legend=None
            ),
            tooltip=[
                "layer",
                "head",
                "role",
                *[alt.Tooltip(f"{p}:Q", format=".2f") for p in HeadProfile.PATTERNS],
            ],
        )
    )
    mark = (
        alt.Chart(pd.DataFrame({"layer": [layer]}))
        .mark_rect(fill=None, stroke=ORANGE, strokeWidth=2)
        .encode(y=alt.Y("layer:O", sort="descending"))
    )
    return (base + mark).properties(height=max(160, 12 * int(df["layer"].max() + 1)))


def next_token_change_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("token:N", sort=list(dict.fromkeys(df["token"])), title=None),
            x=alt.X("probability:Q", title="p(next token)"),
            yOffset="heads:N",
            color=alt.Color(
                "heads:N",
                scale=alt.Scale(range=["#9ecae1", "#e6550d"]),
                title=None,
                legend=alt.Legend(orient="top", direction="vertical", labelLimit=400),
            ),
            tooltip=["token", "heads", alt.Tooltip("probability:Q", format=".4f")],
        )
        .properties(height=34 * df["token"].nunique())
    )


def gqa_chart(n_heads: int, n_kv_heads: int) -> alt.Chart:
    g = n_heads // n_kv_heads
    df = pd.DataFrame({"q": list(range(n_heads)), "kv": [h // g for h in range(n_heads)]})
    base = alt.Chart(df).encode(
        x=alt.X("q:O", title="query head"),
        y=alt.Y("kv:O", title="key/value head"),
        tooltip=[
            alt.Tooltip("q:O", title="query head"),
            alt.Tooltip("kv:O", title="key/value head"),
        ],
    )
    return (
        base.mark_rect(stroke="white", strokeWidth=2).encode(
            color=alt.Color("kv:N", legend=None, scale=alt.Scale(scheme="tableau10"))
        )
        + base.mark_text(color="white").encode(text="q:O")
    ).properties(height=36 * n_kv_heads)


@st.cache_data(max_entries=4, show_spinner="Measuring every head on repeated random sequences…")
def cached_profile(model_id: str) -> HeadProfile:
    return core_multi_head.head_roles(load_model(model_id).model)


@st.cache_data(max_entries=64, show_spinner="Running the model with heads switched off…")
def cached_ablation(
    model_id: str, text: str, layer: int, heads: tuple[int, ...]
) -> interventions.NextTokenChange:
    trace = get_trace(text, cap=ATTENTION_CAP, model_id=model_id, attentions=True)
    model = load_model(model_id).model
    ablated = interventions.last_logits(model, trace.ids.tolist(), {layer: heads})
    return interventions.next_token_change(trace.last_logits, ablated)


@st.fragment
def heads_section(lm, g, trace, profile, text: str) -> None:
    """Every head of a layer drawn on the prompt, the measured roles, and switching heads off."""
    # opens on a layer whose heads the measurement names, not on layer 0's "mixed" ones: the
    # widget's own default, so a link leaves it out and "Reset this page" comes back to it
    opening = min(core_multi_head.first_layer_showing(profile), g.n_layers - 1)
    layer = st.slider(
        "Layer", 0, g.n_layers - 1, opening, key="multi_head.layer", bind="query-params"
    )
    draw_panels(
        small_multiples_frame(trace.attentions[layer], head_titles(profile, layer, g.n_heads)),
        "head",
        head_small_chart,
        columns=min(5, g.n_heads),
    )
    st.caption("Each map: query (rows, down) x key (columns), colour 0 to 1 as on page 08.")
    c1, c2 = st.columns([2, 3])
    with c1:
        st.markdown(
            "**Every head of every layer, by measured role** (the box marks this layer; "
            "paler = weaker)"
        )
        draw_chart(head_map_chart(profile_frame(profile), layer))
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
    table = profile_frame(profile).query("layer == @layer").set_index("head")
    st.dataframe(  # full width, below the map and the method: its 8 columns fit uncut
        table.drop(columns=["layer", "strength"]).round(3),
        width="stretch",
        column_config={"head": st.column_config.NumberColumn(f"layer {layer}, head")},
    )

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
    change = cached_ablation(lm.model_id, text, layer, tuple(sorted(off)))
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
    draw_chart(next_token_change_chart(df))
    st.caption(
        "The shared model is untouched: the switch-off is a hook that exists only during "
        "this page's forward pass and only in this session's thread."
    )
