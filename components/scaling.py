"""Charts and cached wrappers for compute and scale (page 15)."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import fitting_columns, sources_line
from components.pretraining_loop import cached_corpus, fmt_params
from core import pretraining_loop as pt
from core import scaling as sc
from core.layers import toy_threads
from core.shared.published import count_parameters

ISOFLOP_BUDGETS = (1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25)
METHODS = {"20 tokens per parameter": "rule", "Chinchilla fit (Approach 3)": "fit"}
SHORT = {"rule": "rule of 20", "fit": "Chinchilla fit"}
FRONTIER_COLORS = alt.Scale(  # each recipe's line in the colour of the paper's table for it
    domain=[
        "20 tokens per parameter",
        "Table 3 (Approach 1)",
        "Chinchilla fit (Approach 3)",
        "Table A3 (Approach 3)",
        "trained models",
    ],
    range=["#1f77b4", "#6baed6", "#e6550d", "#fdae6b", "#2ca02c"],
)
LABEL_BELOW = {"Llama 2 7B", "GPT-3 175B"}  # labels under their point, clear of neighbours
# log axes: decades only, written 1M, 1B, 1T instead of d3's 1G for a billion
SI_LABELS = (
    "datum.value >= 1e12 ? format(datum.value / 1e12, '~g') + 'T' : "
    "datum.value >= 1e9 ? format(datum.value / 1e9, '~g') + 'B' : "
    "datum.value >= 1e6 ? format(datum.value / 1e6, '~g') + 'M' : "
    "format(datum.value, '~g')"
)


def log_axis(field: str, title: str, lo: int, hi: int, step: int = 1) -> alt.X:
    ticks = [10.0**k for k in range(lo, hi + 1, step)]
    return dict(
        field=field,
        type="quantitative",
        title=title,
        scale=alt.Scale(type="log", domain=[ticks[0], ticks[-1]]),
        axis=alt.Axis(values=ticks, labelExpr=SI_LABELS, grid=True),
    )


# The budget slider reaches the paper's largest projection (Table 3's 10T parameters, 1.30e28)
BUDGET_MIN = 18.0
BUDGET_MAX = math.ceil(math.log10(max(c for _, c, _ in sc.TABLE_3_APPROACH_1)) * 10) / 10


def tokens_per_param(table) -> tuple[float, float]:
    """The fewest and most tokens per parameter among a table's rows (parameters, FLOPs, tokens)."""
    ratios = [d / n for n, _, d in table]
    return min(ratios), max(ratios)


def fit_against_table_a3() -> tuple[tuple[float, float], tuple[float, float]]:
    """How far the fit's optimum (this page's unrounded constants) lands from the paper's own
    Table A3 at each of its budgets: (fewest, most) relative distance, for N and for D."""
    dn, dd = [], []
    for n, c, d in sc.TABLE_A3_APPROACH_3:
        n_fit, d_fit = sc.CHINCHILLA.optimal(c)
        dn.append(abs(n_fit / n - 1))
        dd.append(abs(d_fit / d - 1))
    return (min(dn), max(dn)), (min(dd), max(dd))


def duration_text(seconds: float) -> str:
    """A wall time in the unit a person would use: seconds, minutes, hours, days or years
    (a small budget is not "0.0 days")."""
    for unit, size, limit in (
        ("seconds", 1, 120),
        ("minutes", 60, 120 * 60),
        ("hours", 3600, 72 * 3600),
        ("days", 86400, 2 * 365 * 86400),
    ):
        if seconds < limit:
            value = seconds / size
            return f"{value:,.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{seconds / (365.25 * 86400):,.1f} years"


def optimum(method: str, flops: float) -> tuple[float, float]:
    return sc.twenty_tokens_rule(flops) if method == "rule" else sc.CHINCHILLA.optimal(flops)


# ---- isoFLOP curves ---------------------------------------------------------------------------


def isoflop_frame(budget: float) -> pd.DataFrame:
    rows = []
    budgets = sorted(set(ISOFLOP_BUDGETS) | {budget})
    for c in budgets:
        n_opt, _ = sc.CHINCHILLA.optimal(c)
        grid = np.logspace(np.log10(n_opt) - 1.5, np.log10(n_opt) + 1.5, 61)
        for n, loss in zip(grid, sc.isoflop_curve(sc.CHINCHILLA, c, grid)):
            rows.append(
                {
                    "parameters": n,
                    "loss": float(loss),
                    "budget": f"{c:.1e}",
                    "selected": bool(c == budget),
                }
            )
    return pd.DataFrame(rows)


def isoflop_chart(df: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(df).encode(
        x=alt.X(**log_axis("parameters", "parameters N (log)", 6, 14, 2)),
        y=alt.Y("loss:Q", title="predicted loss L(N, C/6N)", scale=alt.Scale(zero=False)),
        detail="budget:N",
        tooltip=[
            alt.Tooltip("budget:N", title="FLOPs"),
            alt.Tooltip("parameters:Q", format=".3s"),
            alt.Tooltip("loss:Q", format=".3f"),
        ],
    )
    lines = base.mark_line(clip=True).encode(
        color=alt.Color(
            "budget:N",
            title="budget C (FLOPs)",
            sort=None,
            scale=alt.Scale(scheme="viridis"),
            legend=alt.Legend(orient="bottom", columns=fitting_columns(df["budget"].unique())),
        ),
        strokeWidth=alt.condition("datum.selected", alt.value(4), alt.value(1.5)),
    )
    minima = df.loc[df.groupby("budget")["loss"].idxmin()]
    dots = (
        alt.Chart(minima)
        .mark_point(filled=True, size=50, color="#d62728")
        .encode(x="parameters:Q", y="loss:Q")
    )
    return (lines + dots).properties(height=360)


# ---- parameters and tokens: optima, the paper's tables, known models -----------------------------


def frontier_frame(known: tuple[sc.KnownModel, ...]) -> pd.DataFrame:
    rows = []
    for c in np.logspace(18, 28, 41):
        for label, method in METHODS.items():
            n, d = optimum(method, float(c))
            rows.append(
                {
                    "parameters": n,
                    "tokens": d,
                    "what": label,
                    "kind": "line",
                    "FLOPs": float(c),
                    "name": "",
                }
            )
    tables = {
        "Table 3 (Approach 1)": sc.TABLE_3_APPROACH_1,
        "Table A3 (Approach 3)": sc.TABLE_A3_APPROACH_3,
    }
    for label, table in tables.items():
        for n, c, d in table:
            rows.append(
                {
                    "parameters": n,
                    "tokens": d,
                    "what": label,
                    "kind": "table",
                    "FLOPs": c,
                    "name": "",
                }
            )
    for m in known:
        rows.append(
            {
                "parameters": m.params,
                "tokens": m.tokens,
                "what": "trained models",
                "kind": "model",
                "FLOPs": m.flops,
                "name": m.name,
            }
        )
    return pd.DataFrame(rows)


def frontier_chart(df: pd.DataFrame) -> alt.Chart:
    x = alt.X(**log_axis("parameters", "parameters N (log)", 7, 14))
    y = alt.Y(**log_axis("tokens", "training tokens D (log)", 8, 16))
    color = alt.Color(
        "what:N",
        title=None,
        scale=FRONTIER_COLORS,
        legend=alt.Legend(
            orient="bottom", columns=fitting_columns(df["what"].unique()), labelLimit=320
        ),
    )
    tip = [
        "what",
        "name",
        alt.Tooltip("parameters:Q", format=".3s"),
        alt.Tooltip("tokens:Q", format=".3s"),
        alt.Tooltip("FLOPs:Q", format=".2e"),
    ]
    lines = alt.Chart(df[df.kind == "line"]).mark_line().encode(x=x, y=y, color=color, tooltip=tip)
    tables = (
        alt.Chart(df[df.kind == "table"])
        .mark_point(size=45)
        .encode(x=x, y=y, color=color, tooltip=tip)
    )
    models = df[df.kind == "model"].assign(below=lambda d: d.name.isin(LABEL_BELOW))
    dots = (
        alt.Chart(models)
        .mark_point(filled=True, size=90, shape="diamond")
        .encode(x=x, y=y, color=color, tooltip=tip)
    )
    above = (
        alt.Chart(models[~models.below])
        .mark_text(align="left", dx=8, dy=-7, fontSize=11)
        .encode(x=x, y=y, text="name:N", color=alt.Color("what:N", legend=None))
    )
    below = (
        alt.Chart(models[models.below])
        .mark_text(align="left", dx=6, dy=11, fontSize=11)
        .encode(x=x, y=y, text="name:N", color=alt.Color("what:N", legend=None))
    )
    return (lines + tables + dots + above + below).properties(height=420)


def known_models_frame(known: tuple[sc.KnownModel, ...]) -> pd.DataFrame:
    rows = []
    for m in known:
        n_opt, d_opt = sc.CHINCHILLA.optimal(m.flops)
        rows.append(
            {
                "model": m.name,
                "parameters": fmt_params(m.params),
                "tokens": fmt_params(m.tokens),
                "tokens per parameter": round(m.tokens / m.params),
                "C = 6ND (FLOPs)": f"{m.flops:.2e}",
                "predicted loss": round(float(sc.CHINCHILLA.loss(m.params, m.tokens)), 3),
                "fit's optimal N for this C": fmt_params(n_opt),
                "source": m.source,
            }
        )
    return pd.DataFrame(rows)


def known_models_table(known: tuple[sc.KnownModel, ...]) -> None:
    """The famous models' table, with short headers and its sources under it, so that every
    column fits a projector uncut."""
    known_df = known_models_frame(known)
    st.dataframe(
        known_df.drop(columns=["source"]),
        hide_index=True,
        width="stretch",
        column_config={
            "tokens per parameter": st.column_config.NumberColumn("tokens / param"),
            "C = 6ND (FLOPs)": st.column_config.TextColumn("C = 6ND", help="Training FLOPs."),
            "predicted loss": st.column_config.NumberColumn(
                "fit's loss", help="L(N, D) from the Chinchilla fit (Approach 3)."
            ),
            "fit's optimal N for this C": st.column_config.TextColumn(
                "fit's best N", help="The fit's compute-optimal parameter count for this C."
            ),
        },
    )
    st.caption(sources_line(known_df["model"], known_df["source"]))


# ---- the mini scaling sweep --------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=8)
def cached_sweep_params(vocab_size: int, sizes: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    configs = [sc.sweep_config(n_layer, d_model, 1) for n_layer, d_model in sizes]
    return tuple(count_parameters(pt.make_model_for(vocab_size, c)) for c in configs)


def sweep_estimate_s(vocab_size: int, steps: int, sizes: tuple[tuple[int, int], ...]) -> float:
    """The button's estimate: each model's arithmetic and fixed costs (core's estimate)."""
    params = cached_sweep_params(vocab_size, sizes)
    return sum(
        pt.training_estimate_s(n, sc.sweep_config(n_layer, d_model, steps))
        for n, (n_layer, d_model) in zip(params, sizes)
    )


def sweep_work(steps: int):
    corpus = cached_corpus("char", "")

    def work(report):
        with toy_threads():
            return sc.scaling_sweep(corpus, steps, report=report)

    return work


def sweep_frame(result: sc.SweepResult) -> pd.DataFrame:
    rows = []
    for r in result.runs:
        layers = f"{r.n_layer} layer{'s' if r.n_layer > 1 else ''}"
        label = f"{layers}, d={r.d_model} ({fmt_params(r.params)})"
        rows += [
            {"compute": c, "loss": loss, "model": label, "kind": "run"}
            for c, loss in zip(r.compute, r.val_loss)
            if c > 0
        ]
    cs = np.array([c for c, _ in result.frontier])
    for c in np.logspace(np.log10(cs.min()), np.log10(cs.max()), 30):
        rows.append(
            {
                "compute": float(c),
                "loss": float(result.law(c)),
                "model": "power-law fit",
                "kind": "fit",
            }
        )
    return pd.DataFrame(rows)


def sweep_chart(df: pd.DataFrame) -> alt.Chart:
    lo, hi = float(df["compute"].min()), float(df["compute"].max())
    decades = list(range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1))
    x = alt.X(
        "compute:Q",
        title="training compute C = 6ND (FLOPs, log)",
        scale=alt.Scale(type="log", domain=[10.0 ** decades[0], 10.0 ** decades[-1]]),
        axis=alt.Axis(values=[10.0**k for k in decades], format=".0e"),
    )
    y = alt.Y(
        "loss:Q",
        title="validation loss (nats/char, log)",
        scale=alt.Scale(
            type="log", domain=[float(df["loss"].min()) * 0.97, float(df["loss"].max()) * 1.03]
        ),
    )
    runs = (
        alt.Chart(df[df.kind == "run"])
        .mark_line(point=True)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "model:N",
                title="model",
                sort=None,
                legend=alt.Legend(
                    orient="bottom",
                    columns=fitting_columns(df[df.kind == "run"]["model"].unique()),
                    labelLimit=260,
                ),
            ),
            tooltip=[
                "model",
                alt.Tooltip("compute:Q", format=".2e"),
                alt.Tooltip("loss:Q", format=".3f"),
            ],
        )
    )
    fit = (
        alt.Chart(df[df.kind == "fit"]).mark_line(strokeDash=[6, 4], color="gray").encode(x=x, y=y)
    )
    return (runs + fit).properties(height=320)
