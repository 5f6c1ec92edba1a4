"""The transformer block (concept 10): the block diagram, stage statistics, update sizes and
parameters per part, cached around core.block."""

from __future__ import annotations

import html

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import BLUE, GREY, ORANGE, graph_colours, graph_defaults
from components.memo import byte_cached
from components.models import load_model
from components.tokens import token_axis
from core import block as core_block
from core.inspect.anatomy import anatomy


@byte_cached(spinner="Taking every block apart on the prompt…")
def cached_block_anatomy(model_id: str, text: str) -> core_block.BlockAnatomy:
    return core_block.block_anatomy(load_model(model_id), text)


@st.cache_data(max_entries=8)
def cached_parameters(
    model_id: str,
) -> tuple[core_block.ModelParameters, tuple[core_block.ParamRow, ...]]:
    model = load_model(model_id).model
    first = anatomy(model).blocks[0]
    return core_block.model_parameters(model), core_block.block_parameters(first)


def _dot_label(*lines: str) -> str:
    return "\\n".join(html.escape(line).replace('"', "'") for line in lines)


def block_diagram_dot(
    a: core_block.BlockAnatomy,
    layer: int,
    part_params: dict[str, int],
    colours: dict[str, str] | None = None,
) -> str:
    """Graphviz source of one block, read from the model's modules, with live RMS per stage;
    `colours` from `charts.graph_colours()` (the reader's theme), light when not given."""
    c = colours or graph_colours("light")
    rms = a.token_rms[layer].mean(axis=1)  # (stages,) average over tokens
    n1, at, n2, mlp = a.part_names
    c1, ca, c2, cm = a.part_classes

    def part(name: str, cls: str, stage: int) -> str:
        return _dot_label(
            f"{name} ({cls})",
            f"{part_params.get(name, 0):,} parameters",
            f"output RMS {rms[stage]:.3g}",
        )

    nodes = {
        "x": ("ellipse", _dot_label(f"x: residual stream into block {layer}", f"RMS {rms[0]:.3g}")),
        "n1": ("box", part(n1, c1, 1)),
        "att": ("box", part(at, ca, 2)),
        "add1": ("circle", "+"),
        "n2": ("box", part(n2, c2, 4)),
        "mlp": ("box", part(mlp, cm, 5)),
        "add2": ("circle", "+"),
        "out": (
            "ellipse",
            _dot_label(
                f"to block {layer + 1}"
                if layer + 1 < a.n_layers
                else "to the final norm and lm_head",
                f"RMS {rms[6]:.3g}",
            ),
        ),
    }
    lines = ["digraph block {", "rankdir=TB;", graph_defaults(c)]
    fills = {"n1": c["blue"], "n2": c["blue"], "att": c["orange"], "mlp": c["green"]}
    for key, (shape, label) in nodes.items():
        fill = fills.get(key, c["node"])
        lines.append(f'{key} [shape={shape}, label="{label}", style=filled, fillcolor="{fill}"];')
    a_mean = float(a.attn_update[layer].mean())
    m_mean = float(a.mlp_update[layer].mean())
    lines += [
        "x -> n1 -> att;",
        f'att -> add1 [label=" a: {a_mean:.2f}×|x|"];',
        'x -> add1 [label=" residual", style=dashed];',
        "add1 -> n2 -> mlp;",
        f'mlp -> add2 [label=" m: {m_mean:.2f}×|x+a|"];',
        'add1 -> add2 [label=" residual", style=dashed];',
        "add2 -> out;",
        "}",
    ]
    return "\n".join(lines)


def stage_frame(a: core_block.BlockAnatomy, layer: int) -> pd.DataFrame:
    rms = a.token_rms[layer]  # (stages, T)
    labels = token_axis(a.tokens)
    return pd.DataFrame(
        [
            {"stage": f"{s + 1}. {name}", "order": s, "token": labels[t], "RMS": float(rms[s, t])}
            for s, name in enumerate(core_block.STAGES)
            for t in range(rms.shape[1])
        ]
    )


def stage_stats_frame(a: core_block.BlockAnatomy, layer: int) -> pd.DataFrame:
    """The prompt's statistics at each step of one block, over all tokens and dimensions."""
    names = dict(zip((1, 2, 4, 5), a.part_names, strict=True))
    return pd.DataFrame(
        [
            {
                "step": f"{s + 1}. {name}" + (f" ({names[s]})" if s in names else ""),
                "mean RMS": float(a.token_rms[layer, s].mean()),
                "mean": float(a.stage_mean[layer, s]),
                "std": float(a.stage_std[layer, s]),
                "max |value|": float(a.stage_max_abs[layer, s]),
            }
            for s, name in enumerate(core_block.STAGES)
        ]
    )


def stage_chart(df: pd.DataFrame) -> alt.Chart:
    """Each token's RMS at every step of the block (lines), and the mean (bold)."""
    x = alt.X(
        "stage:N",
        sort=alt.SortField("order"),
        title=None,
        axis=alt.Axis(labelAngle=-30, labelLimit=170, labelOverlap=False),
    )
    base = alt.Chart(df)
    tokens = base.mark_line(opacity=0.25, point=alt.OverlayMarkDef(size=12)).encode(
        x=x,
        y=alt.Y("RMS:Q", scale=alt.Scale(type="log"), title="RMS of the vector (log)"),
        detail="token:N",
        color=alt.value(GREY),
        tooltip=["token", "stage", alt.Tooltip("RMS:Q", format=".3g")],
    )
    mean = base.mark_line(point=True, strokeWidth=3, color=BLUE).encode(
        x=x, y="mean(RMS):Q", tooltip=["stage", alt.Tooltip("mean(RMS):Q", format=".3g")]
    )
    return (tokens + mean).properties(height=300, title="RMS per token at each step (blue: mean)")


def update_frame(a: core_block.BlockAnatomy) -> pd.DataFrame:
    rows = []
    for layer in range(a.n_layers):
        rows.append(
            {
                "layer": layer,
                "update": "attention a / |x|",
                "ratio": float(np.median(a.attn_update[layer])),
            }
        )
        rows.append(
            {
                "layer": layer,
                "update": "MLP m / |x + a|",
                "ratio": float(np.median(a.mlp_update[layer])),
            }
        )
    return pd.DataFrame(rows)


def update_chart(df: pd.DataFrame, layer: int) -> alt.Chart:
    """How much each block's attention and MLP change the residual stream, layer by layer."""
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", title="layer"),
            y=alt.Y("ratio:Q", title="update / stream (median)", scale=alt.Scale(type="log")),
            color=alt.Color(
                "update:N",
                scale=alt.Scale(range=[ORANGE, BLUE]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=["layer", "update", alt.Tooltip("ratio:Q", format=".3f")],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(strokeDash=[4, 3]).encode(x="layer:Q")
    )
    return (lines + rule).properties(height=320)


def params_frame(rows: tuple[core_block.ParamRow, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "part": r.part,
                "tensor": r.tensor,
                "shape": " × ".join(map(str, r.shape)),
                "parameters": r.count,
            }
            for r in rows
        ]
    )


def params_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y(
                "tensor:N", sort=None, title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)
            ),
            x=alt.X("parameters:Q", title="parameters in one block"),
            color=alt.Color("part:N", legend=None),  # the tensor names already carry the part
            tooltip=["tensor", "shape", alt.Tooltip("parameters:Q", format=",")],
        )
        .properties(height=alt.Step(24))
    )
