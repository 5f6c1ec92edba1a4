"""Shared chart helpers every page can use: draw a chart at a size that fits its column,
long-form frames of matrices, generic bars. Chart builders elsewhere are pure `data -> alt.Chart`."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

ORANGE, BLUE, GREY = "#e8590c", "#4c6ef5", "#adb5bd"  # one palette for the model pages
HEAT = alt.Scale(scheme="oranges", domain=[0, 1])


def draw_chart(chart: alt.TopLevelMixin, extra: int = 70, width: str = "content") -> None:
    """st.altair_chart for single and layered charts. Streamlit 1.67 fits them into a box
    (axes and legend included), which squeezes heatmaps with long labels: at content width the
    spec's own size is kept ('pad'); stretched, the height is passed with room for the axes."""
    if width == "content":
        st.altair_chart(chart.properties(autosize=alt.AutoSizeParams(type="pad")),
                        width="content")
        return
    h = getattr(chart, "height", alt.Undefined)
    st.altair_chart(chart, width=width, height=int(h) + extra if isinstance(h, int) else "content")


def matrix_frame(m: np.ndarray, name: str, rows: list[str], cols: list[str] | None = None
                 ) -> pd.DataFrame:
    r, c = np.indices(m.shape)
    cols = cols or [str(i) for i in range(m.shape[1])]
    return pd.DataFrame({"row": np.array(rows)[r.ravel()], "col": np.array(cols)[c.ravel()],
                         "value": m.ravel().astype(np.float32), "panel": name})


def bar_chart(df: pd.DataFrame, label: str, value: str, title: str) -> alt.Chart:
    return alt.Chart(df, title=title).mark_bar(color="#3182bd").encode(
        y=alt.Y(f"{label}:N", sort=None, title=None), x=alt.X(f"{value}:Q"),
        tooltip=[label, alt.Tooltip(f"{value}:Q", format=".3f")]).properties(
        height=20 * len(df))
