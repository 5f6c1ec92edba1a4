"""Prompt engineering: cached measurements per condition, tables and the p(positive) strip plot."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from components.jobs import finished_result, shared_step
from components.models import load_model
from core import prompting as P

# Per-item costs on 2 idle cores: greedy decoding runs at about 20 tokens/s (DESIGN.md), and a
# review read over the cached prefix is taken at an upper guess of 0.35 s (on this shared,
# heavily loaded machine 30 reads took 4-6 min of wall time). The job's estimate multiplies
# these by the settings; its progress bar then refines the time left from the measured pace.
SECONDS_PER_READ = 0.35
SECONDS_PER_THOUGHT_TOKEN = 0.06


@st.cache_data(show_spinner=False)
def cached_reviews() -> tuple[tuple[P.Review, ...], tuple[P.Review, ...]]:
    return P.load_reviews()


def condition_for(technique: str, template: str, k: int, seed: int, think: int) -> P.Condition:
    """Only the settings a technique uses enter its condition, so its cache key stays stable."""
    return P.Condition(
        technique,
        template,
        k if technique == "few-shot" else 0,
        seed if technique == "few-shot" else 0,
        think if technique == "step-by-step" else 0,
    )


def _condition_key(model_id: str, c: P.Condition) -> tuple:
    return ("prompting", "condition", model_id, c)


def missing(model_id: str, conditions: list[P.Condition]) -> list[P.Condition]:
    """The conditions no learner has measured yet with this model (kept in the job store)."""
    return [c for c in conditions if finished_result(_condition_key(model_id, c)) is None]


def measure_estimate_s(conditions: list[P.Condition], reviews: int) -> float:
    per = [
        reviews
        * (
            SECONDS_PER_READ
            + (
                c.think_tokens * SECONDS_PER_THOUGHT_TOKEN + 2 * SECONDS_PER_READ
                if c.think_tokens
                else 0
            )
        )
        for c in conditions
    ]
    return sum(per)


def measure_all(model_id: str, conditions: list[P.Condition], report) -> list[P.ConditionResult]:
    """Each condition once per process (a shared step in the job store); conditions measured
    before, by any learner, are reused at once."""
    reviews, pool = cached_reviews()
    unmeasured = missing(model_id, conditions)
    out = []
    for c in conditions:
        n = unmeasured.index(c) if c in unmeasured else 0
        sub = lambda f, text="", partial=None, n=n: report((n + f) / max(1, len(unmeasured)), text)  # noqa: E731
        out.append(
            shared_step(
                _condition_key(model_id, c),
                lambda c=c, sub=sub: P.measure_condition(
                    load_model(model_id), c, reviews, pool, sub
                ),
            )
        )
    st.session_state[JUST_MEASURED] = True
    return out


JUST_MEASURED = "prompting.just_measured"


def measured_just_now() -> bool:
    """True once after a run of `measure_all` in this session: the page then draws itself
    again, so the button's caption ("4 of 4 not measured yet") does not outlive the run."""
    return bool(st.session_state.pop(JUST_MEASURED, False))


def summary_frame(results: list[P.ConditionResult], threshold: float) -> pd.DataFrame:
    rows = []
    for r in results:
        s = P.summarise(r)
        _, best_acc = P.best_threshold(r.p_positive, r.truth)
        rows.append(
            {
                "technique": s.technique,
                "accuracy at 0.5": s.accuracy,
                # the slider's own column only when it is not the fixed 0.5 above (two columns
                # read "accuracy at 0.5" and "accuracy at 0.50" at the default)
                **(
                    {}
                    if round(threshold, 2) == 0.5
                    else {
                        f"accuracy at your threshold {threshold:.2f}": P.accuracy(
                            r.p_positive, r.truth, threshold
                        )
                    }
                ),
                "best cut's accuracy": best_acc,
                "AUC": s.auc,
                "mass on label tokens": s.label_mass,
                "prompt tokens (all reviews)": s.prompt_tokens,
                "tokens computed (prefix cached)": s.computed_tokens,
                "tokens generated": s.generated_tokens,
            }
        )
    return pd.DataFrame(rows)


TWO_DECIMALS = ("accuracy", "AUC", "mass")  # summary columns shown with two decimals
# Short headers, the whole wording in each column's help: nine long headers hid the last two
# columns at 1280 and 1440 px.
SUMMARY_HEADERS = {
    "accuracy at 0.5": ("acc. at 0.5", "Accuracy with the cut at p(positive) = 0.5."),
    "best cut's accuracy": ("best-cut acc.", "Accuracy at this technique's own best cut."),
    "AUC": ("AUC", "1.0 = every positive review scored above every negative one."),
    "mass on label tokens": ("label mass", "Probability on the label tokens (format kept)."),
    "prompt tokens (all reviews)": ("prompt tokens", "Prompt tokens over all reviews."),
    "tokens computed (prefix cached)": (
        "computed",
        "Tokens the model actually computed: the shared prefix is computed once.",
    ),
    "tokens generated": ("generated", "Tokens generated (step-by-step thinks before it answers)."),
}


def summary_column_config(table: pd.DataFrame) -> dict:
    """Short headers with their help, and two decimals for accuracies, AUC and mass."""
    config = {}
    for c in table.columns:
        label, help_text = SUMMARY_HEADERS.get(c, (None, None))
        if c.startswith("accuracy at your threshold"):
            label, help_text = f"acc. at {c.rsplit(' ', 1)[-1]}", "Accuracy at your threshold."
        if c.startswith(TWO_DECIMALS) or c.endswith("accuracy"):
            config[c] = st.column_config.NumberColumn(label, help=help_text, format="%.2f")
        elif label is not None:
            config[c] = st.column_config.NumberColumn(label, help=help_text)
    return config


def strip_frame(results: list[P.ConditionResult], reviews: tuple[P.Review, ...]) -> pd.DataFrame:
    rows = []
    for r in results:
        for i, (p, t, said) in enumerate(zip(r.p_positive, r.truth, r.said)):
            rows.append(
                {
                    "technique": r.condition.technique,
                    "review": reviews[i].text,
                    "truth": "positive" if t else "negative",
                    "p(positive)": p,
                    "label mass": r.mass[i],
                    "model's top next token": said,
                    "jitter": ((i * 7) % 11) / 10 - 0.5,
                }
            )
    return pd.DataFrame(rows)


def strip_chart(df: pd.DataFrame, threshold: float) -> alt.Chart:
    """One dot per review and technique; the rule is the movable threshold."""
    dots = (
        alt.Chart(df)
        .mark_circle(size=70, opacity=0.8)
        .encode(
            x=alt.X(
                "p(positive):Q",
                scale=alt.Scale(domain=[0, 1]),
                title="p(positive), read over the label tokens",
            ),
            y=alt.Y("technique:N", title=None, sort=list(P.TECHNIQUES)),
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.8, 0.8])),
            color=alt.Color(
                "truth:N",
                title="true label",
                scale=alt.Scale(domain=["positive", "negative"], range=["#2ca02c", "#d62728"]),
            ),
            tooltip=[
                "technique",
                "review",
                "truth",
                alt.Tooltip("p(positive):Q", format=".3f"),
                alt.Tooltip("label mass:Q", format=".1%"),
                "model's top next token",
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"t": [threshold]}))
        .mark_rule(strokeDash=[4, 3], size=2)
        .encode(x="t:Q")
    )
    return (dots + rule).properties(height=70 * max(1, df["technique"].nunique()) + 30)
