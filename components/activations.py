"""Activation functions (concept 03): curves and slopes, the training race, and the
pre-activation histogram of the LM."""

from __future__ import annotations

import time
from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core import layers as pgc
from core.activations import LABELS


def activation_curves_chart(c, derivative: bool) -> alt.Chart:
    """Every chosen activation (or its derivative) over the chosen range, one line each."""

    source = c.derivatives if derivative else c.values
    df = (
        pd.concat(
            [pd.DataFrame({"x": c.x, "y": v, "activation": LABELS[k]}) for k, v in source.items()]
        )
        if source
        else pd.DataFrame({"x": [], "y": [], "activation": []})
    )
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x="x:Q",
            y=alt.Y("y:Q", title="f′(x)" if derivative else "f(x)"),
            color=alt.Color("activation:N"),
            tooltip=["activation", "x", "y"],
        )
        .properties(title="derivative" if derivative else "activation", height=300)
    )


def histogram_chart(h, title: str) -> alt.Chart:
    df = pd.DataFrame(
        {
            "from": h.edges[:-1],
            "to": h.edges[1:],
            "count": h.counts,
            "side": np.where(h.edges[1:] <= 0, "negative", "positive"),
        }
    )
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("from:Q", title="pre-activation value"),
            x2="to",
            y=alt.Y("count:Q"),
            color=alt.Color(
                "side:N",
                scale=alt.Scale(domain=["negative", "positive"], range=["#4dabf7", "#f76707"]),
            ),
            tooltip=["from", "to", "count"],
        )
        .properties(title=title, height=260)
    )


COMPARISON = pgc.PlaygroundConfig(dataset="spiral", hidden=(8, 8), learning_rate=0.3, batch_size=30)


COMPARISON_EPOCHS = 150


@st.cache_data(max_entries=32, show_spinner=False)
def cached_activation_run(name: str, epochs: int = COMPARISON_EPOCHS) -> dict:
    """The comparison network trained with one activation: final numbers for the table."""

    start = time.perf_counter()
    pg = pgc.train_run(replace(COMPARISON, activation=name), epochs)
    return {
        "train loss": pg.train_loss[-1],
        "test loss": pg.test_loss[-1],
        "test accuracy": pg.accuracy(),
        "seconds": time.perf_counter() - start,
    }
