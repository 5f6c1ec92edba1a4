"""Charts and cached wrappers for pages 10-12: the block, the logit lens, the LM objective."""

from __future__ import annotations

import html

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.models import load_model
from components.tokens import visible
from core import block as core_block
from core import lens as core_lens
from core import lm_objective as obj
from core.trace import Trace, token_strings

ORANGE, BLUE, GREY = "#e8590c", "#4c6ef5", "#adb5bd"


def short(token: str, width: int = 10) -> str:
    """A token made visible and cut to fit a chart cell."""
    v = visible(token)
    return v if len(v) <= width else v[: width - 1] + "…"


def code_span(token: str) -> str:
    """A token or typed text as inline code for st.markdown, closed against backticks."""
    return "`" + visible(token).replace("`", "ˋ") + "`"


def token_axis(tokens: tuple[str, ...], offset: int = 0) -> list[str]:
    """Unique axis labels: position and visible token ('3 ·fox')."""
    return [f"{i + offset} {short(t, 12)}" for i, t in enumerate(tokens)]


# ---- cached wrappers -----------------------------------------------------------------------


@st.cache_data(show_spinner="Taking every block apart on the prompt…", max_entries=16, ttl=3600)
def cached_block_anatomy(model_id: str, text: str) -> core_block.BlockAnatomy:
    return core_block.block_anatomy(load_model(model_id), text)


@st.cache_data(max_entries=8)
def cached_parameters(
    model_id: str,
) -> tuple[core_block.ModelParameters, tuple[core_block.ParamRow, ...]]:
    model = load_model(model_id).model
    first = core_block.decoder_layers(model)[0]
    return core_block.model_parameters(model), core_block.block_parameters(first)


@st.cache_data(show_spinner="Reading every layer through the logit lens…", max_entries=24,
               ttl=3600)
def cached_logit_lens(model_id: str, text: str, start: int, window: int) -> core_lens.LogitLens:
    return core_lens.logit_lens(load_model(model_id), text, start=start, window=window)


@st.cache_data(max_entries=8)
def model_sizes_frame(model_id: str) -> pd.DataFrame:
    """Published models and the loaded one, each counted from its configuration."""
    lm = load_model(model_id)
    rows = []
    configs = [*core_lens.PUBLISHED_CONFIGS,
               {**core_lens.config_dict(lm.config), "name": f"{model_id} (loaded)",
                "source": "the loaded model's own config"}]
    for cfg in configs:
        try:
            shape = core_lens.arch_shape(cfg)
        except (ValueError, KeyError):
            continue  # a hub model of another family: no formula for it
        count = core_lens.parameter_count(shape)
        rows.append({
            "model": cfg["name"], "parameters": count.total,
            "billions": count.total / 1e9, "layers": shape.n_layer, "d_model": shape.d_model,
            "heads (q/kv)": f"{shape.n_head}/{shape.n_kv_head}", "d_ff": shape.d_ff,
            "vocab": shape.vocab, "tied head": shape.tied,
            "embeddings %": 100 * (count.embeddings + count.lm_head) / count.total,
            "loaded": cfg["source"] == "the loaded model's own config",
            "source": cfg["source"],
        })
    return pd.DataFrame(rows)


@st.cache_data(max_entries=64)
def decode_ids(model_id: str, ids: tuple[int, ...]) -> tuple[str, ...]:
    return token_strings(load_model(model_id).tokenizer, ids)


# ---- page 10: the block --------------------------------------------------------------------


def _dot_label(*lines: str) -> str:
    return "\\n".join(html.escape(line).replace('"', "'") for line in lines)


def block_diagram_dot(a: core_block.BlockAnatomy, layer: int,
                      part_params: dict[str, int]) -> str:
    """Graphviz source of one block, read from the model's modules, with live RMS per stage."""
    rms = a.token_rms[layer].mean(axis=1)  # (stages,) average over tokens
    n1, at, n2, mlp = a.part_names
    c1, ca, c2, cm = a.part_classes

    def part(name: str, cls: str, stage: int) -> str:
        return _dot_label(f"{name} ({cls})", f"{part_params.get(name, 0):,} parameters",
                          f"output RMS {rms[stage]:.3g}")

    nodes = {
        "x": ("ellipse", _dot_label(f"x: residual stream into block {layer}",
                                    f"RMS {rms[0]:.3g}")),
        "n1": ("box", part(n1, c1, 1)), "att": ("box", part(at, ca, 2)),
        "add1": ("circle", "+"), "n2": ("box", part(n2, c2, 4)), "mlp": ("box", part(mlp, cm, 5)),
        "add2": ("circle", "+"),
        "out": ("ellipse", _dot_label(f"to block {layer + 1}" if layer + 1 < a.n_layers
                                      else "to the final norm and lm_head",
                                      f"RMS {rms[6]:.3g}")),
    }
    lines = ['digraph block {', 'rankdir=TB; node [fontname="Helvetica", fontsize=11];']
    fills = {"n1": "#e7f5ff", "n2": "#e7f5ff", "att": "#fff4e6", "mlp": "#ebfbee"}
    for key, (shape, label) in nodes.items():
        fill = fills.get(key, "#f8f9fa")
        lines.append(f'{key} [shape={shape}, label="{label}", style=filled, fillcolor="{fill}"];')
    a_mean = float(a.attn_update[layer].mean())
    m_mean = float(a.mlp_update[layer].mean())
    lines += [
        "x -> n1 -> att;", f'att -> add1 [label=" a: {a_mean:.2f}×|x|"];',
        'x -> add1 [label=" residual", style=dashed];', "add1 -> n2 -> mlp;",
        f'mlp -> add2 [label=" m: {m_mean:.2f}×|x+a|"];',
        'add1 -> add2 [label=" residual", style=dashed];', "add2 -> out;", "}",
    ]
    return "\n".join(lines)


def stage_frame(a: core_block.BlockAnatomy, layer: int) -> pd.DataFrame:
    rms = a.token_rms[layer]  # (stages, T)
    labels = token_axis(a.tokens)
    return pd.DataFrame([
        {"stage": f"{s + 1}. {name}", "order": s, "token": labels[t], "RMS": float(rms[s, t])}
        for s, name in enumerate(core_block.STAGES) for t in range(rms.shape[1])
    ])


def stage_stats_frame(a: core_block.BlockAnatomy, layer: int) -> pd.DataFrame:
    """The prompt's statistics at each step of one block, over all tokens and dimensions."""
    names = dict(zip((1, 2, 4, 5), a.part_names, strict=True))
    return pd.DataFrame([
        {"step": f"{s + 1}. {name}" + (f" ({names[s]})" if s in names else ""),
         "mean RMS": float(a.token_rms[layer, s].mean()), "mean": float(a.stage_mean[layer, s]),
         "std": float(a.stage_std[layer, s]), "max |value|": float(a.stage_max_abs[layer, s])}
        for s, name in enumerate(core_block.STAGES)
    ])


def stage_chart(df: pd.DataFrame) -> alt.Chart:
    """Each token's RMS at every step of the block (lines), and the mean (bold)."""
    x = alt.X("stage:N", sort=alt.SortField("order"), title=None,
              axis=alt.Axis(labelAngle=-30, labelLimit=170, labelOverlap=False))
    base = alt.Chart(df)
    tokens = base.mark_line(opacity=0.25, point=alt.OverlayMarkDef(size=12)).encode(
        x=x, y=alt.Y("RMS:Q", scale=alt.Scale(type="log"), title="RMS of the vector (log)"),
        detail="token:N", color=alt.value(GREY), tooltip=["token", "stage", alt.Tooltip("RMS:Q",
                                                                                         format=".3g")])
    mean = base.mark_line(point=True, strokeWidth=3, color=BLUE).encode(
        x=x, y="mean(RMS):Q", tooltip=["stage", alt.Tooltip("mean(RMS):Q", format=".3g")])
    return (tokens + mean).properties(height=300, title="RMS per token at each step (blue: mean)")


def update_frame(a: core_block.BlockAnatomy) -> pd.DataFrame:
    rows = []
    for layer in range(a.n_layers):
        rows.append({"layer": layer, "update": "attention a / |x|",
                     "ratio": float(np.median(a.attn_update[layer]))})
        rows.append({"layer": layer, "update": "MLP m / |x + a|",
                     "ratio": float(np.median(a.mlp_update[layer]))})
    return pd.DataFrame(rows)


def update_chart(df: pd.DataFrame, layer: int) -> alt.Chart:
    """How much each block's attention and MLP change the residual stream, layer by layer."""
    lines = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("layer:Q", title="layer"),
        y=alt.Y("ratio:Q", title="update / stream (median)", scale=alt.Scale(type="log")),
        color=alt.Color("update:N", scale=alt.Scale(range=[ORANGE, BLUE]),
                        legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["layer", "update", alt.Tooltip("ratio:Q", format=".3f")])
    rule = alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(strokeDash=[4, 3]).encode(
        x="layer:Q")
    return (lines + rule).properties(height=320)


def params_frame(rows: tuple[core_block.ParamRow, ...]) -> pd.DataFrame:
    return pd.DataFrame([{"part": r.part, "tensor": r.tensor,
                          "shape": " × ".join(map(str, r.shape)), "parameters": r.count}
                         for r in rows])


def params_chart(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("tensor:N", sort=None, title=None,
                axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        x=alt.X("parameters:Q", title="parameters in one block"),
        color=alt.Color("part:N", legend=None),  # the tensor names already carry the part
        tooltip=["tensor", "shape", alt.Tooltip("parameters:Q", format=",")],
    ).properties(height=alt.Step(24))


# ---- page 11: the logit lens and sizes -----------------------------------------------------


def lens_frame(lens: core_lens.LogitLens) -> pd.DataFrame:
    rows = []
    labels = token_axis(lens.tokens)
    for layer, (row_tokens, row_probs) in enumerate(zip(lens.top_tokens, lens.top_probs,
                                                        strict=True)):
        for j, pos in enumerate(lens.window):
            cell = {"layer": layer, "position": labels[pos], "order": pos,
                    "guess": short(row_tokens[j][0], 8), "p": float(row_probs[j][0]),
                    "cell": f"{short(row_tokens[j][0], 8)}\n{row_probs[j][0]:.0%}",
                    "next in text": visible(lens.actual_next[j]) if lens.actual_next[j]
                    is not None else "(end of prompt)"}
            for r in range(len(row_tokens[j])):
                cell[f"top {r + 1}"] = f"{visible(row_tokens[j][r])}  {row_probs[j][r]:.1%}"
            rows.append(cell)
    return pd.DataFrame(rows)


def lens_chart(df: pd.DataFrame) -> alt.Chart:
    """Layers (rows, 0 = embeddings) x positions: the top guess and its probability."""
    tips = ["position", "layer", "next in text", *[c for c in df.columns if c.startswith("top ")]]
    x = alt.X("position:N", sort=alt.SortField("order"), title="reading position (its token)",
              axis=alt.Axis(labelAngle=-40, orient="top", labelLimit=120, labelOverlap=False))
    y = alt.Y("layer:O", sort="descending", title="layer (0 = embeddings)")
    rect = alt.Chart(df).mark_rect().encode(
        x=x, y=y, color=alt.Color("p:Q", title="top-1 probability",
                                  scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=tips)
    text = alt.Chart(df).mark_text(fontSize=9, font="monospace", lineBreak="\n",
                                   lineHeight=10).encode(
        x=x, y=y, text="cell:N",
        color=alt.condition("datum.p > 0.55", alt.value("white"), alt.value("#222")),
        tooltip=tips)
    return (rect + text).properties(height=alt.Step(26))


def residual_norm_frame(lens: core_lens.LogitLens) -> pd.DataFrame:
    labels = token_axis(lens.tokens)
    norms = lens.residual_norm  # (layers+1, T)
    return pd.DataFrame([{"layer": layer, "token": labels[t], "norm": float(norms[layer, t])}
                         for layer in range(norms.shape[0]) for t in range(norms.shape[1])])


def residual_norm_chart(df: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(df)
    per_token = base.mark_line(opacity=0.2, color=GREY).encode(
        x=alt.X("layer:Q", title="layer (0 = embeddings)"),
        y=alt.Y("norm:Q", title="‖residual stream‖ (log)", scale=alt.Scale(type="log")),
        detail="token:N", tooltip=["token", "layer", alt.Tooltip("norm:Q", format=".1f")])
    median = base.mark_line(point=True, color=ORANGE, strokeWidth=3).encode(
        x="layer:Q", y="median(norm):Q",
        tooltip=["layer", alt.Tooltip("median(norm):Q", format=".1f", title="median")])
    return (per_token + median).properties(height=280)


def model_sizes_chart(df: pd.DataFrame) -> alt.Chart:
    # bars on a log axis have no zero to start from: draw from a floor below the smallest
    floor = 10 ** np.floor(np.log10(max(1.0, float(df["parameters"].min()))))
    base = alt.Chart(df.assign(floor=floor)).encode(
        y=alt.Y("model:N", sort="x", title=None, axis=alt.Axis(labelLimit=260,
                                                                labelOverlap=False)),
        color=alt.condition("datum.loaded", alt.value(ORANGE), alt.value(BLUE)),
        tooltip=["model", alt.Tooltip("parameters:Q", format=","), "layers", "d_model",
                 "heads (q/kv)", "d_ff", "vocab",
                 alt.Tooltip("embeddings %:Q", format=".1f"), "source"],
    )
    x = alt.X("parameters:Q", scale=alt.Scale(type="log"), title="parameters (log scale)")
    bars = base.mark_bar(height=14).encode(x=x, x2="floor:Q")
    labels = base.mark_text(align="left", dx=4, color="#444").encode(
        x=x, text=alt.Text("parameters:Q", format=".3s"))
    return (bars + labels).properties(height=alt.Step(22))


# ---- page 12: the objective ----------------------------------------------------------------

SURPRISAL_PARAM = "picked"
PER_ROW = 12


def surprisal_frame(s: obj.Surprisal) -> pd.DataFrame:
    bits = s.bits
    return pd.DataFrame([
        {"position": int(p), "row": int(p) // PER_ROW, "col": int(p) % PER_ROW,
         "token": short(s.tokens[int(p)], 11), "bits": float(b), "p": float(2.0 ** -b)}
        for p, b in zip(s.positions, bits, strict=True)
    ])


def surprisal_chart(df: pd.DataFrame, picked: int) -> alt.Chart:
    """The text as a grid of tokens coloured by surprisal; click one to pick it."""
    sel = alt.selection_point(name=SURPRISAL_PARAM, fields=["position"], on="click",
                              value=[{"position": picked}], toggle=False)
    x = alt.X("col:O", axis=None, scale=alt.Scale(paddingInner=0.08))
    y = alt.Y("row:O", axis=None, scale=alt.Scale(paddingInner=0.15))
    tips = ["position", "token", alt.Tooltip("bits:Q", format=".2f", title="surprisal (bits)"),
            alt.Tooltip("p:Q", format=".2%", title="p(token)")]
    rect = alt.Chart(df).mark_rect(stroke="#222").encode(
        x=x, y=y, color=alt.Color("bits:Q", title="surprisal (bits)",
                                  scale=alt.Scale(scheme="orangered", domainMin=0),
                                  legend=alt.Legend(orient="bottom", gradientLength=240)),
        strokeWidth=alt.condition(sel, alt.value(2.5), alt.value(0)), tooltip=tips,
    ).add_params(sel)
    text = alt.Chart(df).mark_text(font="monospace", fontSize=11).encode(
        x=x, y=y, text="token:N",
        color=alt.condition("datum.bits > 12", alt.value("white"), alt.value("#222")),
        tooltip=tips)
    return (rect + text).properties(height=alt.Step(30), width=alt.Step(72))


def picked_position(event: object, default: int) -> int:
    """The clicked position from an Altair selection event, or `default`."""
    try:
        points = event.selection[SURPRISAL_PARAM]  # type: ignore[attr-defined]
        return int(points[0]["position"])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return default


def alternatives_frame(alt_: obj.Alternatives) -> pd.DataFrame:
    return pd.DataFrame([
        {"rank": i + 1, "token": f"{i + 1}. {visible(t)}", "p": float(p),
         "actual": int(alt_.actual_rank or 0) == i + 1}
        for i, (t, p) in enumerate(zip(alt_.tokens, alt_.probs, strict=True))
    ])


def alternatives_chart(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("token:N", sort=alt.SortField("rank"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        x=alt.X("p:Q", title="model's probability", axis=alt.Axis(format="%")),
        color=alt.condition("datum.actual", alt.value(ORANGE), alt.value(BLUE)),
        tooltip=["token", alt.Tooltip("p:Q", format=".2%")],
    ).properties(height=alt.Step(22))


def percent(p: float) -> str:
    """A probability as a percentage, in scientific notation when it would print as 0.00 %."""
    return f"{p:.2%}" if p >= 5e-5 else f"{p:.1e}"


def trace_top_tokens(model_id: str, trace: Trace, position: int) -> tuple[str, ...]:
    """The model's top guesses for `position`, decoded (cached per model and ids)."""
    return decode_ids(model_id, tuple(int(i) for i in trace.top_ids[position - 1]))
