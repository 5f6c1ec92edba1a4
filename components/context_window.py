"""The context window (concept 20): prompt budget and truncation, forward cost against length,
KV-cache memory of published models, and the needle-in-a-haystack probe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from components.models import load_model
from components.tokens import visible
from core import inference as inf

# --- cached measurements ----------------------------------------------------------------------


@st.cache_data(max_entries=8, ttl=3600, show_spinner="Running the model at several lengths…")
def cached_forward_costs(model_id: str, longest: int, run: int) -> pd.DataFrame:
    lm = load_model(model_id)
    lengths = inf.sweep_lengths(inf.context_length(lm.config), longest)
    ids = inf.filler_ids(lm.tokenizer, max(lengths))
    inf.forward_cost(lm, ids[:16])  # warm-up: the first call pays one-off allocation costs
    return pd.DataFrame([asdict(inf.forward_cost(lm, ids[:n])) for n in lengths])


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_token_count(model_id: str, text: str) -> tuple[int, ...]:
    lm = load_model(model_id)
    return tuple(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()


# --- charts -----------------------------------------------------------------------------------


def forward_time_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Measured forward time beside n² and n curves scaled through the longest measurement."""
    last = df.iloc[-1]
    rows = []
    for _, r in df.iterrows():
        rows.append({"tokens": r.tokens, "ms": r.seconds * 1000, "series": "measured"})
        rows.append({"tokens": r.tokens, "series": "n² (through the last point)",
                     "ms": last.seconds * 1000 * (r.tokens / last.tokens) ** 2})
        rows.append({"tokens": r.tokens, "series": "n (through the last point)",
                     "ms": last.seconds * 1000 * (r.tokens / last.tokens)})
    data = pd.DataFrame(rows)
    color = alt.Color("series:N", title=None,
                      legend=alt.Legend(orient="top", labelLimit=300, columns=2),
                      scale=alt.Scale(domain=["measured", "n² (through the last point)",
                                              "n (through the last point)"],
                                      range=["#4C6EF5", "#e8590c", "#868e96"]))
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("ms:Q", title="forward pass (ms)"), color=color,
        tooltip=["series", "tokens", alt.Tooltip("ms:Q", format=".1f")],
    )
    measured = base.transform_filter(alt.datum.series == "measured").mark_line(point=True)
    curves = base.transform_filter(alt.datum.series != "measured").mark_line(strokeDash=[5, 4])
    return (curves + measured).properties(height=280)


def memory_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Bytes measured from the tensors (points) against their formulas (lines)."""
    rows = []
    for _, r in df.iterrows():
        for part, measured, formula in (("attention scores, one layer (n²)", r.scores_bytes,
                                         r.scores_formula),
                                        ("KV cache, all layers (n)", r.kv_bytes, r.kv_formula)):
            rows.append({"tokens": r.tokens, "part": part, "MB": measured / 1e6, "how": "measured"})
            rows.append({"tokens": r.tokens, "part": part, "MB": formula / 1e6, "how": "formula"})
    data = pd.DataFrame(rows)
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("MB:Q", title="memory (MB)"),
        color=alt.Color("part:N", title=None,
                        legend=alt.Legend(orient="top", labelLimit=300, columns=1)),
        tooltip=["part", "how", "tokens", alt.Tooltip("MB:Q", format=".3f")],
    )
    lines = base.transform_filter(alt.datum.how == "formula").mark_line()
    points = base.transform_filter(alt.datum.how == "measured").mark_point(size=70, filled=True)
    return (lines + points).properties(height=280)


def kv_models_chart(points: Sequence[inf.KvPoint]) -> alt.Chart:
    data = pd.DataFrame([{"model": p.model, "tokens": p.tokens, "GB": p.bytes / 1e9}
                         for p in points])
    return (
        alt.Chart(data).mark_line(point=True).encode(
            x=alt.X("tokens:Q", title="context length (tokens, log scale)",
                    scale=alt.Scale(type="log", base=2)),
            y=alt.Y("GB:Q", title="KV cache per sequence (GB, log scale)",
                    scale=alt.Scale(type="log")),
            color=alt.Color("model:N", title=None,
                            legend=alt.Legend(orient="right", labelLimit=300)),
            tooltip=["model", "tokens", alt.Tooltip("GB:Q", format=".4f")],
        ).properties(height=320)
    )


def budget_chart(prompt_tokens: int, context: int, budget: int) -> alt.LayerChart:
    data = pd.DataFrame([
        {"what": "model's context length", "tokens": context},
        {"what": "your prompt", "tokens": prompt_tokens},
        {"what": "truncation budget", "tokens": budget},
    ])
    bars = alt.Chart(data).mark_bar().encode(
        y=alt.Y("what:N", title=None, sort=None, axis=alt.Axis(labelLimit=250)),
        x=alt.X("tokens:Q", title="tokens"),
        color=alt.Color("what:N", legend=None,
                        scale=alt.Scale(range=["#adb5bd", "#4C6EF5", "#e8590c"])),
        tooltip=["what", alt.Tooltip("tokens:Q", format=",")],
    )
    text = bars.mark_text(align="left", dx=4).encode(text=alt.Text("tokens:Q", format=","))
    return (bars + text).properties(height=140)


def needle_chart(trials: Sequence[inf.NeedleTrial]) -> alt.LayerChart:
    """Recall by needle depth (x) and haystack length (y): found = filled cell."""
    data = pd.DataFrame([{"depth": f"{t.depth:.0%}", "d": t.depth, "length": t.length,
                          "tokens": t.tokens, "recall": 1.0 if t.found else 0.0,
                          "answer": visible(t.answer)[:40], "secret": t.secret,
                          "seconds": round(t.seconds, 1)} for t in trials])
    base = alt.Chart(data).encode(
        x=alt.X("depth:N", title="needle depth in the haystack",
                sort=alt.SortField("d")),
        y=alt.Y("length:O", title="haystack length (tokens)", sort="descending"),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color("recall:Q", title="recall", scale=alt.Scale(domain=[0, 1],
                        range=["#ffe3e3", "#2f9e44"])),
        tooltip=["length", "tokens", "depth", "secret", "answer", "seconds"],
    )
    labels = base.mark_text().encode(text=alt.Text("answer:N"))
    return (cells + labels).properties(height=60 + 45 * data["length"].nunique())
