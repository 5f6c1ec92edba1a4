"""The context window (concept 20): prompt budget and truncation, forward cost against length,
KV-cache memory of published models, and the needle-in-a-haystack probe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import fitting_columns
from components.jobs import finished_result, load_factor, run_job
from components.models import load_model
from components.tokens import visible
from core import context_window
from core import inference_loop as inf

# --- cached measurements ----------------------------------------------------------------------


def forward_costs(model_id: str, longest: int, report=None) -> pd.DataFrame:
    """One forward pass at 32, 64, ... tokens of filler up to `longest`, each measured;
    `report(fraction, text)` after each length when given (weighted by its token count)."""
    lm = load_model(model_id)
    lengths = context_window.sweep_lengths(inf.context_length(lm.config), longest)
    ids = context_window.filler_ids(lm.tokenizer, max(lengths))
    context_window.forward_cost(
        lm, ids[:16]
    )  # warm-up: the first call pays one-off allocation costs
    rows, done, total = [], 0, sum(lengths)
    for n in lengths:
        rows.append(asdict(context_window.forward_cost(lm, ids[:n])))
        done += n
        if report is not None:
            report(done / total, f"{n} tokens measured")
    return pd.DataFrame(rows)


def forward_estimate_s(model_id: str, longest: int) -> float:
    """Idle-machine seconds for the sweep on a ~135M model on 2 cores (about 300 tokens a
    second per forward pass, plus a fixed cost per pass), scaled by the current load."""
    lm = load_model(model_id)
    lengths = context_window.sweep_lengths(inf.context_length(lm.config), longest)
    return (sum(lengths) / 300 + 0.3 * (len(lengths) + 1)) * load_factor()


def cached_forward_costs(model_id: str, longest: int, run: int = 0) -> pd.DataFrame:
    """Forward costs for estimates (the needle probe's): the sweep's shared measurement when it
    has run with these settings, else the idle-machine model of `forward_estimate_s` scaled by
    the current load, with the byte columns from their formulas. Never runs the model, so a
    first render stays quick. `run` is accepted for older callers and ignored."""
    done = finished_result(("context_window", "forward", model_id, longest))
    if done is not None:
        return done.value
    lm = load_model(model_id)
    width = inf.model_dtype_bytes(lm.model)
    factor = load_factor()
    rows = []
    for n in context_window.sweep_lengths(inf.context_length(lm.config), longest):
        scores = context_window.attention_scores_formula(lm.config, n, width)
        kv = inf.kv_cache_bytes(lm.config, n, width)
        rows.append(
            {
                "tokens": n,
                "seconds": (n / 300 + 0.3) * factor,
                "scores_bytes": scores,
                "scores_formula": scores,
                "kv_bytes": kv,
                "kv_formula": kv,
            }
        )
    return pd.DataFrame(rows)


def forward_costs_job(model_id: str, longest: int) -> pd.DataFrame | None:
    """The length sweep behind a button (`components.jobs.run_job`): progress, Stop, and one
    result shared by every learner with the same model and longest length."""
    return run_job(
        ("context_window", "forward", model_id, longest),
        lambda report: forward_costs(model_id, longest, report),
        start_label=f"Measure forward passes up to {longest} tokens",
        estimate_s=forward_estimate_s(model_id, longest),
        caps=f"Lengths 32, 64, … up to {longest} (cap {inf.FORWARD_CAP}); the estimate "
        "is scaled by how busy this shared machine is right now.",
        rerun_label="Measure again",
    )


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
        rows.append(
            {
                "tokens": r.tokens,
                "series": "n² (through the last point)",
                "ms": last.seconds * 1000 * (r.tokens / last.tokens) ** 2,
            }
        )
        rows.append(
            {
                "tokens": r.tokens,
                "series": "n (through the last point)",
                "ms": last.seconds * 1000 * (r.tokens / last.tokens),
            }
        )
    data = pd.DataFrame(rows)
    color = alt.Color(
        "series:N",
        title=None,
        legend=alt.Legend(orient="top", labelLimit=300, columns=1),
        scale=alt.Scale(
            domain=["measured", "n² (through the last point)", "n (through the last point)"],
            range=["#4C6EF5", "#e8590c", "#868e96"],
        ),
    )
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("ms:Q", title="forward pass (ms)"),
        color=color,
        tooltip=["series", "tokens", alt.Tooltip("ms:Q", format=".1f")],
    )
    measured = base.transform_filter(alt.datum.series == "measured").mark_line(point=True)
    curves = base.transform_filter(alt.datum.series != "measured").mark_line(strokeDash=[5, 4])
    return (curves + measured).properties(height=280)


def memory_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Bytes measured from the tensors (points) against their formulas (lines)."""
    rows = []
    for _, r in df.iterrows():
        for part, measured, formula in (
            ("attention scores, one layer (n²)", r.scores_bytes, r.scores_formula),
            ("KV cache, all layers (n)", r.kv_bytes, r.kv_formula),
        ):
            rows.append({"tokens": r.tokens, "part": part, "MB": measured / 1e6, "how": "measured"})
            rows.append({"tokens": r.tokens, "part": part, "MB": formula / 1e6, "how": "formula"})
    data = pd.DataFrame(rows)
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("MB:Q", title="memory (MB)"),
        color=alt.Color(
            "part:N", title=None, legend=alt.Legend(orient="top", labelLimit=300, columns=1)
        ),
        tooltip=["part", "how", "tokens", alt.Tooltip("MB:Q", format=".3f")],
    )
    lines = base.transform_filter(alt.datum.how == "formula").mark_line()
    points = base.transform_filter(alt.datum.how == "measured").mark_point(size=70, filled=True)
    return (lines + points).properties(height=280)


def kv_models_chart(points: Sequence[inf.KvPoint]) -> alt.Chart:
    data = pd.DataFrame(
        [{"model": p.model, "tokens": p.tokens, "GB": p.bytes / 1e9} for p in points]
    )
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "tokens:Q",
                title="context length (tokens, log scale)",
                scale=alt.Scale(type="log", base=2),
            ),
            y=alt.Y(
                "GB:Q", title="KV cache per sequence (GB, log scale)", scale=alt.Scale(type="log")
            ),
            color=alt.Color(
                "model:N",
                title=None,
                # below the plot: at the right it left a phone's plot 100 px wide
                legend=alt.Legend(
                    orient="bottom", columns=fitting_columns(data["model"].unique()), labelLimit=300
                ),
            ),
            tooltip=["model", "tokens", alt.Tooltip("GB:Q", format=".4f")],
        )
        .properties(height=320)
    )


def budget_chart(prompt_tokens: int, context: int, budget: int) -> alt.LayerChart:
    data = pd.DataFrame(
        [
            {"what": "model's context length", "tokens": context},
            {"what": "your prompt", "tokens": prompt_tokens},
            {"what": "truncation budget", "tokens": budget},
        ]
    )
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("what:N", title=None, sort=None, axis=alt.Axis(labelLimit=250)),
            x=alt.X("tokens:Q", title="tokens"),
            color=alt.Color(
                "what:N", legend=None, scale=alt.Scale(range=["#adb5bd", "#4C6EF5", "#e8590c"])
            ),
            tooltip=["what", alt.Tooltip("tokens:Q", format=",")],
        )
    )
    text = bars.mark_text(align="left", dx=4).encode(text=alt.Text("tokens:Q", format=","))
    return (bars + text).properties(height=140)


NEEDLE_ROW_PX = 40  # one haystack length per row: room for a line of answer text
NEEDLE_NOTE = (
    "Each cell prints the model's answer; an answer longer than its cell is cut with '…' "
    "(on a narrow screen most are): hover a cell for the whole answer, the secret and the time."
)


def needle_chart(trials: Sequence[context_window.NeedleTrial]) -> alt.LayerChart:
    """Recall by needle depth (x) and haystack length (y): found = filled cell."""
    data = pd.DataFrame(
        [
            {
                "depth": f"{t.depth:.0%}",
                "d": t.depth,
                "length": t.length,
                "tokens": t.tokens,
                "recall": 1.0 if t.found else 0.0,
                "answer": visible(t.answer)[:40],
                "secret": t.secret,
                "seconds": round(t.seconds, 1),
            }
            for t in trials
        ]
    )
    base = alt.Chart(data).encode(
        x=alt.X(
            "depth:N",
            title="needle depth in the haystack",
            sort=alt.SortField("d"),
            axis=alt.Axis(labelAngle=0, labelAlign="center"),
        ),
        y=alt.Y("length:O", title="haystack length (tokens)", sort="descending"),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "recall:Q", title="recall", scale=alt.Scale(domain=[0, 1], range=["#ffe3e3", "#2f9e44"])
        ),
        tooltip=["length", "tokens", "depth", "secret", "answer", "seconds"],
    )
    # an answer longer than its cell is cut with an ellipsis (the tooltip has it whole)
    # the fill runs from pale red (0) to dark green (1) on a fixed domain: white text on green
    labels = base.mark_text(limit=alt.expr("bandwidth('x') - 6")).encode(
        text=alt.Text("answer:N"),
        color=alt.condition("datum.recall > 0.5", alt.value("#ffffff"), alt.value("#222222")),
    )
    # a fixed row height: rows never shrink below one line of text, however many lengths
    return (cells + labels).properties(height=alt.Step(NEEDLE_ROW_PX))


JUST_RAN = "context.needle_just_ran"


def just_ran(work):
    """`work`, marking that its live chart (run_job's on_partial, drawn with every trial up to
    the last) already shows the result this script run: `drawn_live` then skips the second copy."""

    def marked(report):
        value = work(report)
        st.session_state[JUST_RAN] = True
        return value

    return marked


def drawn_live() -> bool:
    return bool(st.session_state.pop(JUST_RAN, False))
