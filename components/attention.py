"""Attention (concept 08): one head's map, clickable, and its step-by-step recomputation;
the encoder's bidirectional attention.

Chart builders are pure `data -> alt.Chart`; wrappers take hashable arguments (model id, text,
numbers) and call core. Token text only ever reaches Vega as data, never as HTML.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import HEAT, THINNED_AXIS, draw_chart, matrix_frame, thinned_note
from components.memo import byte_cached
from components.models import get_encoder, get_trace, load_model
from components.tokens import token_labels
from core import attention as core_attention
from core.attention import ATTENTION_CAP, HeadSteps
from core.inspect.trace import Trace

# Channel objects, not strings or dicts: Altair validates those against the schema on every
# redraw, which alone cost ~0.2 s per layer change here.
TIPS = [
    alt.Tooltip("query token:N"),
    alt.Tooltip("key token:N"),
    alt.Tooltip("weight:Q", format=".3f"),
]


def attention_frame(weights: np.ndarray, tokens) -> pd.DataFrame:
    """Long form of a (T, T) attention map: one row per query/key pair on or below the diagonal
    (for a causal map) or every pair (bidirectional)."""
    labels = token_labels(tokens)
    t = weights.shape[0]
    q, k = np.indices((t, t))
    keep = (k <= q) | (np.triu(weights, 1).sum() > 0)
    return pd.DataFrame(
        {
            "query": q[keep],
            "key": k[keep],
            "query token": np.array(labels)[q[keep]],
            "key token": np.array(labels)[k[keep]],
            "weight": weights[keep].astype(np.float32),
        }
    )


def attention_click_chart(
    df: pd.DataFrame, labels: list[str], title: str, size: int | None = None
) -> alt.VConcatChart:
    """Query x key heatmap; clicking a cell or a token picks the query row, shown as bars.
    `size` is the heatmap's height: its width follows the column (draw it with
    `draw_chart`), the legend sits below it, and token labels that do not fit are thinned."""
    last = int(df["query"].max())
    size = size or min(520, max(260, 22 * len(labels)))  # ~22 px a row keeps every label
    pick = alt.selection_point(
        fields=["query"], on="click", value=[{"query": last}], clear=False, name="pick"
    )
    heat = (
        alt.Chart(df, title=title)
        .mark_rect()
        .encode(
            x=alt.X(
                "key token:N", sort=labels, title="key (attended to)", axis=alt.Axis(**THINNED_AXIS)
            ),
            y=alt.Y(
                "query token:N",
                sort=labels,
                title="query (attending)",
                axis=alt.Axis(**THINNED_AXIS),
            ),
            color=alt.Color(
                "weight:Q",
                scale=HEAT,
                title="attention",
                legend=alt.Legend(orient="top", direction="horizontal", gradientLength=160),
            ),
            tooltip=TIPS,
        )
        .properties(height=size)
        .add_params(pick)
    )
    bars = (
        alt.Chart(df, title="Where the clicked query token looks")
        .mark_bar(color="#e6550d")
        .encode(
            x=alt.X(
                "key token:N",
                sort=labels,
                title=None,
                scale=alt.Scale(domain=labels),
                axis=alt.Axis(**THINNED_AXIS),
            ),
            y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 1]), title="attention"),
            tooltip=TIPS,
        )
        .transform_filter(pick)
        .properties(height=110)
    )
    return alt.vconcat(heat, bars)


def head_steps_frame(steps: HeadSteps, model_weights: np.ndarray, tokens) -> pd.DataFrame:
    """The six stages as one long table; `shade` is each panel scaled to [-1, 1] for colour."""
    rows = token_labels(tokens)
    dims = [f"dim {i}" for i in range(steps.q.shape[1])]
    masked = np.where(np.isfinite(steps.masked), steps.masked, np.nan)
    panels = [
        (steps.q, "1. queries Q (token x dim)", dims),
        (steps.k, f"2. keys K (key/value head {steps.kv_head})", dims),
        (steps.scores, f"3. Q·Kᵀ x {steps.scale:.3f}", rows),
        (masked, "4. causal mask: future = -inf", rows),
        (steps.weights, "5. softmax per row (ours)", rows),
        (model_weights, "the model's own attention", rows),
    ]
    frames = []
    for m, name, cols in panels:
        df = matrix_frame(m, name, rows, cols).dropna()
        df["shade"] = df["value"] / max(float(df["value"].abs().max()), 1e-12)
        df["x"] = np.tile(np.arange(m.shape[1]), m.shape[0])[~np.isnan(m.ravel())]
        df["y"] = np.repeat(np.arange(m.shape[0]), m.shape[1])[~np.isnan(m.ravel())]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def head_step_chart(df: pd.DataFrame, panel: str) -> alt.Chart:
    """One stage of the recomputation (rows of one `panel` of `head_steps_frame`); draw them
    all with `charts.draw_panels(df, "panel", head_step_chart)` so they fit any column."""
    return (
        alt.Chart(df, title=panel)
        .mark_rect()
        .encode(
            x=alt.X("x:O", axis=None),
            y=alt.Y("y:O", axis=None),
            color=alt.Color(
                "shade:Q",
                scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("panel:N"),
                alt.Tooltip("row:N"),
                alt.Tooltip("col:N"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
        .properties(height=170)
    )


def attention_trace(text: str) -> Trace:
    return get_trace(text, cap=ATTENTION_CAP, attentions=True)


@byte_cached()
def cached_head_steps(model_id: str, text: str, layer: int, head: int) -> HeadSteps:
    trace = get_trace(text, cap=ATTENTION_CAP, model_id=model_id, attentions=True)
    return core_attention.recompute_head(
        load_model(model_id).model, trace.hidden_states[layer], layer, head
    )


@st.cache_resource(max_entries=16, show_spinner="Running MiniLM over the prompt…")
def cached_encoder_attention(text: str) -> core_attention.EncoderAttention:
    return core_attention.encoder_attention(get_encoder(), text)


@st.fragment
def encoder_section(text: str) -> None:
    """MiniLM's attention on the same text: any layer and head, reading both ways."""
    enc = cached_encoder_attention(text)
    n_layers, n_heads = enc.attentions.shape[:2]
    e1, e2 = st.columns(2)
    enc_layer = e1.selectbox("MiniLM layer", list(range(n_layers)), key="attention.enc_layer")
    enc_head = e2.selectbox("MiniLM head", list(range(n_heads)), key="attention.enc_head")
    weights = enc.attentions[enc_layer, enc_head]
    draw_chart(
        attention_click_chart(
            attention_frame(weights, enc.tokens),
            token_labels(enc.tokens),
            f"MiniLM encoder, layer {enc_layer}, head {enc_head}",
        ),
    )
    st.caption(
        f"MiniLM has its own WordPiece tokens, with [CLS] and [SEP] (capped at "
        f"{ATTENTION_CAP} too). Cells above the diagonal are filled: it reads both ways, "
        "which suits understanding a text but not writing one token after another. "
        + thinned_note(len(enc.tokens))
    )
