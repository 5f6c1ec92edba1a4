"""Layers (concept 02): how similar the LM's layers are to one another."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.models import get_trace
from core.neuron import layer_similarity


def layer_similarity_chart(matrix: np.ndarray, title: str) -> alt.Chart:
    n = matrix.shape[0]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    df = pd.DataFrame(
        {"layer": i.ravel(), "other layer": j.ravel(), "similarity": matrix.ravel().round(4)}
    )
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("layer:O", title="layer (0 = embeddings)"),
            y=alt.Y("other layer:O", sort="descending"),
            color=alt.Color("similarity:Q", scale=alt.Scale(scheme="viridis")),
            tooltip=["layer", "other layer", "similarity"],
        )
        .properties(title=title, height=380, width=420)
    )


@st.cache_data(max_entries=16, show_spinner="Comparing the model's layers…")
def cached_layer_similarity(model_id: str, text: str, method: str) -> tuple[np.ndarray, int]:

    trace = get_trace(text, model_id=model_id)
    # The first position carries huge "attention sink" activations that would swamp the
    # comparison; it is left out whenever enough tokens remain.
    hidden = trace.normed[:, 1:] if trace.length > 3 else trace.normed
    return layer_similarity(hidden, method), hidden.shape[1]
