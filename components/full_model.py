"""The full model (concept 11): the logit lens, the residual stream's size, and model sizes
computed from configurations."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components import presenter
from components.charts import BLUE, GREY, ORANGE, ink_encoding, ink_for
from components.memo import byte_cached
from components.models import load_model
from components.tokens import short, token_axis, visible
from core import full_model as core_lens
from core.inspect.anatomy import UnsupportedArchitecture, geometry
from core.shared import published

# ---- cached wrappers -----------------------------------------------------------------------


@byte_cached(spinner="Reading every layer through the logit lens…")
def cached_logit_lens(model_id: str, text: str, start: int, window: int) -> core_lens.LogitLens:
    return core_lens.logit_lens(load_model(model_id), text, start=start, window=window)


@st.cache_data(max_entries=8)
def cached_model_sizes(model_id: str) -> pd.DataFrame:
    """Published models and the loaded one, each counted from its configuration."""
    lm = load_model(model_id)
    rows = []
    configs = [
        *published.PUBLISHED_CONFIGS,
        {
            **published.config_dict(lm.config),
            "name": f"{model_id} (loaded)",
            "source": "the loaded model's own config",
        },
    ]
    for cfg in configs:
        try:
            shape = geometry(cfg)
            count = published.parameter_count(shape)
        except UnsupportedArchitecture:
            continue  # a hub model of another family: no formula for it
        rows.append(
            {
                "model": cfg["name"],
                "parameters": count.total,
                "billions": count.total / 1e9,
                "layers": shape.n_layers,
                "d_model": shape.d_model,
                "heads (q/kv)": f"{shape.n_heads}/{shape.n_kv_heads}",
                "d_ff": shape.d_ff,
                "vocab": shape.vocab,
                "tied head": shape.tied,
                "embeddings %": 100 * (count.embeddings + count.lm_head) / count.total,
                "loaded": cfg["source"] == "the loaded model's own config",
                "source": cfg["source"],
            }
        )
    return pd.DataFrame(rows)


def lens_frame(lens: core_lens.LogitLens) -> pd.DataFrame:
    rows = []
    labels = token_axis(lens.tokens)
    for layer, (row_tokens, row_probs) in enumerate(
        zip(lens.top_tokens, lens.top_probs, strict=True)
    ):
        for j, pos in enumerate(lens.window):
            cell = {
                "layer": layer,
                "position": labels[pos],
                "order": pos,
                "guess": short(row_tokens[j][0], 8),
                "p": float(row_probs[j][0]),
                "cell": f"{short(row_tokens[j][0], LENS_CELL_CHARS)}\n{row_probs[j][0]:.0%}",
                "next in text": visible(lens.actual_next[j])
                if lens.actual_next[j] is not None
                else "(end of prompt)",
            }
            for r in range(len(row_tokens[j])):
                cell[f"top {r + 1}"] = f"{visible(row_tokens[j][r])}  {row_probs[j][r]:.1%}"
            rows.append(cell)
    df = pd.DataFrame(rows)
    df["ink"] = ink_for(df["p"].to_numpy(), "blues", (0.0, 1.0))
    return df


LENS_CELL_CHARS = 6  # a cell's token, cut to this many characters


def lens_cell_min_px(px: int) -> int:
    """Narrower cells drop their words: LENS_CELL_CHARS monospace characters (0.6 em each) at
    `px`, and a little air."""
    return round(LENS_CELL_CHARS * 0.6 * px + 4)


LENS_NARROW_NOTE = (
    "On a narrow screen the cells are too small for their words: they keep only their shade, "
    "and the token axis shows every other label (or fewer); hover a cell for its guesses."
)


def lens_chart(df: pd.DataFrame) -> alt.Chart:
    """Layers (rows, 0 = embeddings) x positions: the top guess and its probability."""
    tips = ["position", "layer", "next in text", *[c for c in df.columns if c.startswith("top ")]]
    x = alt.X(
        "position:N",
        sort=alt.SortField("order"),
        title="reading position (its token)",
        # a phone cannot print 16 slanted tokens: every other one (or fewer), said in the caption
        # slanted up-left from each column, so the last label stays inside the chart
        axis=alt.Axis(
            labelAngle=40, labelAlign="right", orient="top", labelLimit=120, labelOverlap="parity"
        ),
    )
    y = alt.Y("layer:O", sort="descending", title="layer (0 = embeddings)")
    rect = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "p:Q",
                title="top-1 probability",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                legend=alt.Legend(orient="top", direction="horizontal"),  # the width is the cells'
            ),
            tooltip=tips,
        )
    )
    px = presenter.chart_text_px()  # two lines (token, probability) at the smallest size
    text = (
        alt.Chart(df)
        .mark_text(
            fontSize=px,
            font="monospace",
            lineBreak="\n",
            lineHeight=px + 1,
            # words only in cells wide enough to print them (not on a phone): never a smear
            opacity=alt.expr(f"bandwidth('x') >= {lens_cell_min_px(px)} ? 1 : 0"),
        )
        .encode(
            x=x,
            y=y,
            text="cell:N",
            color=ink_encoding(),  # white or dark, whichever reads on the cell's blue
            tooltip=tips,
        )
    )
    return (rect + text).properties(height=alt.Step(2 * (px + 1) + 6))


def residual_norm_frame(lens: core_lens.LogitLens) -> pd.DataFrame:
    labels = token_axis(lens.tokens)
    norms = lens.residual_norm  # (layers+1, T)
    return pd.DataFrame(
        [
            {"layer": layer, "token": labels[t], "norm": float(norms[layer, t])}
            for layer in range(norms.shape[0])
            for t in range(norms.shape[1])
        ]
    )


def residual_norm_chart(df: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(df)
    per_token = base.mark_line(opacity=0.2, color=GREY).encode(
        x=alt.X("layer:Q", title="layer (0 = embeddings)"),
        y=alt.Y("norm:Q", title="‖residual stream‖ (log)", scale=alt.Scale(type="log")),
        detail="token:N",
        tooltip=["token", "layer", alt.Tooltip("norm:Q", format=".1f")],
    )
    median = base.mark_line(point=True, color=ORANGE, strokeWidth=3).encode(
        x="layer:Q",
        y="median(norm):Q",
        tooltip=["layer", alt.Tooltip("median(norm):Q", format=".1f", title="median")],
    )
    return (per_token + median).properties(height=280)


def model_sizes_chart(df: pd.DataFrame) -> alt.Chart:
    # bars on a log axis have no zero to start from: draw from a floor below the smallest
    floor = 10 ** np.floor(np.log10(max(1.0, float(df["parameters"].min()))))
    base = alt.Chart(df.assign(floor=floor)).encode(
        y=alt.Y("model:N", sort="x", title=None, axis=alt.Axis(labelLimit=200, labelOverlap=False)),
        color=alt.condition("datum.loaded", alt.value(ORANGE), alt.value(BLUE)),
        tooltip=[
            "model",
            alt.Tooltip("parameters:Q", format=","),
            "layers",
            "d_model",
            "heads (q/kv)",
            "d_ff",
            "vocab",
            alt.Tooltip("embeddings %:Q", format=".1f"),
            "source",
        ],
    )
    x = alt.X(
        "parameters:Q",
        scale=alt.Scale(type="log"),
        title="parameters (log scale)",
        axis=alt.Axis(format="~s"),  # 100M, 10G, 1T: short enough not to collide on a phone
    )
    bars = base.mark_bar(height=14).encode(x=x, x2="floor:Q")
    labels = base.mark_text(align="left", dx=4, color="#444").encode(
        x=x, text=alt.Text("parameters:Q", format=".3s")
    )
    return (bars + labels).properties(height=alt.Step(22))
