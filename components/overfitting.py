"""Overfitting (concept 05): a polynomial fit, train against validation loss."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.overfitting import fit, truth


@st.cache_data(max_entries=64, show_spinner="Fitting…")
def cached_fit(config):

    return fit(config)


def fit_chart(r) -> alt.Chart:

    curves = pd.concat(
        [
            pd.DataFrame({"x": r.x_curve, "y": truth(r.x_curve), "curve": "truth"}),
            pd.DataFrame({"x": r.x_curve, "y": r.fitted, "curve": "model"}),
        ]
    )
    y_scale = alt.Scale(domain=[-2.5, 2.5])  # one frame for curves and points; marks clipped
    x_scale = alt.Scale(domain=[float(min(r.x_curve)), float(max(r.x_curve))], nice=False)
    lines = (
        alt.Chart(curves)
        .mark_line(clip=True)
        .encode(
            x=alt.X("x:Q", scale=x_scale),
            y=alt.Y("y:Q", scale=y_scale),
            color=alt.Color(
                "curve:N", scale=alt.Scale(domain=["truth", "model"], range=["#adb5bd", "#e8590c"])
            ),
            strokeDash=alt.StrokeDash(
                "curve:N", scale=alt.Scale(domain=["truth", "model"], range=[[5, 4], [1, 0]])
            ),
        )
    )
    pts = (
        alt.Chart(pd.DataFrame({"x": r.x_train, "y": r.y_train}))
        .mark_circle(size=60, color="#1c7ed6", clip=True)
        .encode(x=alt.X("x:Q", scale=x_scale), y=alt.Y("y:Q", scale=y_scale))
    )
    return (lines + pts).properties(title="fitted curve and training points", height=320)


def gap_chart(r) -> alt.Chart:
    """Train and validation loss per step, the gap between them shaded."""
    df = pd.DataFrame({"step": r.steps, "train": r.train_loss, "validation": r.val_loss})
    band = (
        alt.Chart(df)
        .mark_area(opacity=0.25, color="#fa5252")
        .encode(
            x="step:Q",
            y=alt.Y("train:Q", scale=alt.Scale(type="log"), title="mean squared error"),
            y2="validation:Q",
        )
    )
    long = df.melt("step", var_name="set", value_name="loss")
    lines = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x="step:Q",
            y=alt.Y("loss:Q", scale=alt.Scale(type="log")),
            color=alt.Color(
                "set:N",
                scale=alt.Scale(domain=["train", "validation"], range=["#868e96", "#e03131"]),
            ),
        )
    )
    layers = [band, lines]
    if r.stopped_at is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"step": [int(r.steps[r.stopped_at])]}))
            .mark_rule(color="#2f9e44", strokeDash=[4, 3])
            .encode(x="step:Q")
        )
    return alt.layer(*layers).properties(title="train vs validation loss (gap shaded)", height=320)
