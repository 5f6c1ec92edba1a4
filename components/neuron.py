"""The neuron (concept 01): a single neuron over the plane, and the real MLP neurons of the LM."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from components.memo import byte_cached
from components.models import load_model
from core import neuron as neurons
from core.inspect.trace import TRACE_TOKEN_CAP, prompt_tokens, token_strings


def neuron_plane_chart(plane, probe: tuple[float, float] | None = None) -> alt.Chart:
    """A single neuron's output over the input plane, its line w·x + b = 0, and a probe point."""
    step = float(plane.grid[1] - plane.grid[0])
    g1, g2 = np.meshgrid(plane.grid, plane.grid)
    cells = pd.DataFrame(
        {
            "x1": g1.ravel() - step / 2,
            "x1e": g1.ravel() + step / 2,
            "x2": g2.ravel() - step / 2,
            "x2e": g2.ravel() + step / 2,
            "output": plane.output.ravel().round(4),
        }
    )
    ext = float(plane.grid[-1])
    lim = alt.Scale(domain=[-ext, ext])
    heat = (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("x1:Q", scale=lim, title="x₁"),
            x2="x1e",
            y=alt.Y("x2:Q", scale=lim, title="x₂"),
            y2="x2e",
            color=alt.Color("output:Q", scale=alt.Scale(scheme="blueorange", domainMid=0)),
            tooltip=["output"],
        )
    )
    layers = [heat]
    if len(plane.line):
        line = pd.DataFrame({"x1": plane.line[:, 0], "x2": plane.line[:, 1]})
        layers.append(
            alt.Chart(line)
            .mark_line(color="black", strokeWidth=2)
            .encode(x="x1:Q", y="x2:Q", order="x2:Q")
        )
    if probe is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"x1": [probe[0]], "x2": [probe[1]]}))
            .mark_point(shape="cross", size=180, color="black", filled=True)
            .encode(x="x1:Q", y="x2:Q")
        )
    return alt.layer(*layers).properties(width=360, height=360)


@byte_cached(spinner="Reading the MLP neurons of that layer…")
def cached_mlp_capture(model_id: str, text: str, layer: int, cap: int = TRACE_TOKEN_CAP):
    """The layer's MLP neurons on a text, and the same neurons recomputed by hand."""

    lm = load_model(model_id)
    pt = prompt_tokens(lm.tokenizer, text, cap)
    cap_ = neurons.capture_mlp(lm.model, pt.ids, layer)
    recomputed = neurons.recompute_neurons(lm.model, layer, cap_.mlp_input)
    return token_strings(lm.tokenizer, pt.ids), cap_, recomputed, pt.truncated_from
