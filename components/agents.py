"""Agents: the tool loop as a job, the grammar mask per position, and the evaluation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import altair as alt
import pandas as pd

from components.charts import fitting_columns
from components.jobs import run_job
from components.models import load_model
from components.tokens import escape_markdown, visible
from core import agents
from core.agents import AgentRun, AgentScore, AgentStep
from core.runtime.generation import DecodingSettings

TOKENS_PER_S = 15.0  # greedy decoding on an idle 2-core machine, with the prompt's prefill
TOKENS_PER_CALL = 35  # a typical constrained action; the budget caps it at CALL_BUDGET
EVAL_STEPS = 1  # as the evaluation measures it: one call, its observation, then the final answer


def agent_estimate_s(max_steps: int) -> float:
    return (max_steps * TOKENS_PER_CALL + agents.ANSWER_TOKENS) / TOKENS_PER_S


ENDINGS = {  # how a run ended, as the page says it
    "final_answer": "the model called final_answer",
    "repeated": "its last call brought nothing new (the same result as before), so the loop "
    "stopped it: answer prefilled with “The answer is”",
    "step limit": "step limit reached: answer prefilled with “The answer is”",
}


def step_header(step: AgentStep, bold: bool = True) -> str:
    """A step's header as Markdown: its status quotes what the model wrote (an invalid tool
    name, a parse error), which stays literal text: no `$x^2$` typeset, no `**bold**`."""
    number = f"**Step {step.number}**" if bold else f"Step {step.number}"
    return f"{number} · {escape_markdown(step.status)}" + (
        " · error injected" if step.injected_error else ""
    )


def agent_job(
    model_id: str,
    question: str,
    constrained: bool,
    max_steps: int,
    inject: bool,
    temperature: float,
    seed: int,
) -> AgentRun | None:
    today = dt.date.today()

    def work(report) -> AgentRun:
        lm = load_model(model_id)
        report(0.02, "Step 1: the model writes an action…")

        def on_step(step: AgentStep) -> None:
            report(step.number / (max_steps + 1), step_header(step, bold=False))

        s = DecodingSettings(temperature=temperature, seed=seed)
        return agents.run_agent(
            lm,
            question,
            constrained=constrained,
            max_steps=max_steps,
            inject_error=inject,
            settings=s,
            today=today,
            on_step=on_step,
        )

    key = (
        "agents",
        "loop",
        model_id,
        question,
        constrained,
        max_steps,
        inject,
        temperature,
        seed,
        today.isoformat(),
    )
    return run_job(
        key,
        work,
        start_label="Run the agent",
        estimate_s=agent_estimate_s(max_steps),
        caps=f"At most {max_steps} actions of {agents.CALL_BUDGET} tokens each, then "
        f"a final answer of at most {agents.ANSWER_TOKENS} tokens.",
    )


def eval_job(model_id: str) -> tuple[tuple[AgentRun, ...], tuple[AgentRun, ...]] | None:
    """Every shipped question, constrained and not, greedy, one action then the answer."""
    qs = agents.agent_questions()
    today = dt.date.today()

    def work(report):
        lm = load_model(model_id)
        out: dict[bool, list[AgentRun]] = {True: [], False: []}
        total = 2 * len(qs)
        for n, (constrained, q) in enumerate([(c, q) for c in (True, False) for q in qs]):
            mode = "constrained" if constrained else "free"
            report(n / total, f"{mode}: question {len(out[constrained]) + 1} of {len(qs)}")
            out[constrained].append(
                agents.run_agent(
                    lm, q.question, constrained=constrained, max_steps=EVAL_STEPS, today=today
                )
            )
        return tuple(out[True]), tuple(out[False])

    return run_job(
        ("agents", "eval", model_id, today.isoformat()),
        work,
        start_label=f"Measure on {len(qs)} questions, constrained and free",
        estimate_s=2 * len(qs) * agent_estimate_s(EVAL_STEPS),
        caps=f"{len(qs)} questions x 2 modes, greedy, {EVAL_STEPS} action then the final answer.",
    )


# --- frames and charts -----------------------------------------------------------------------


def mask_frame(step: AgentStep, tokenizer) -> pd.DataFrame:
    rows = []
    for n, t in enumerate(step.tokens):
        if t.masked is None:
            continue
        wanted = tokenizer.decode([t.masked.wanted_id])
        rows.append(
            {
                "position": n + 1,
                "token": visible(t.text),
                "allowed": t.masked.allowed,
                "top p before mask": t.masked.top_before,
                "top p after mask": t.masked.top_after,
                "model's first choice": visible(wanted),
                "forced": t.masked.wanted_id != t.token_id,
            }
        )
    return pd.DataFrame(rows)


BAR_FLOOR = 0.5  # where the log-scale bars of allowed tokens start: one allowed token shows


def mask_chart(df: pd.DataFrame, vocab: int) -> alt.VConcatChart:
    """Per generated position: tokens the grammar allows, and the top probability around it."""
    x = alt.X(
        "position:O",
        title="generated token (position)",
        axis=alt.Axis(labelExpr="datum.value % 5 == 0 ? datum.value : ''", labelAngle=0),
    )
    tip = [
        "position",
        "token",
        "allowed",
        "model's first choice",
        alt.Tooltip("top p before mask:Q", format=".3f"),
        alt.Tooltip("top p after mask:Q", format=".3f"),
    ]
    allowed = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=x,
            # bars start at 0.5, not 0: a log scale cannot hold the zero a bar starts from
            # by default (Vega-Lite warned "Log scale domain includes zero" and drew nothing)
            y=alt.Y(
                "allowed:Q",
                title=f"tokens allowed (of {vocab:,})",
                scale=alt.Scale(type="log", domain=[BAR_FLOOR, vocab]),
            ),
            y2=alt.Y2(datum=BAR_FLOOR),
            color=alt.condition(alt.datum.forced, alt.value("#e8590c"), alt.value("#4C6EF5")),
            tooltip=tip,
        )
        .properties(height=150)
    )
    long = df.melt(
        id_vars=["position", "token"],
        value_vars=["top p before mask", "top p after mask"],
        var_name="when",
        value_name="probability",
    )
    probs = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y(
                "probability:Q", title="top token's probability", scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color(
                "when:N",
                title=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(long["when"].unique())),
            ),
            tooltip=["position", "token", "when", alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(height=150)
    )
    return alt.vconcat(allowed, probs).resolve_scale(color="independent")


def score_frame(scores: Sequence[AgentScore]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "decoding": "constrained (llguidance)" if s.constrained else "free (no mask)",
                "valid calls": f"{s.valid_calls}/{s.calls}",
                "stopped by budget": s.budget_stops,
                "right tool first": f"{s.right_tool}/{s.runs}",
                "right final answer": f"{s.right_answer}/{s.runs}",
                "seconds per question": round(s.seconds_per_run, 1),
            }
            for s in scores
        ]
    )


def runs_frame(
    runs: Sequence[AgentRun], questions: Sequence[agents.AgentQuestion], today: dt.date
) -> pd.DataFrame:
    rows = []
    for r, q in zip(runs, questions):
        first = r.steps[0] if r.steps else None
        rows.append(
            {
                "question": q.question,
                "first action": (
                    f"{first.action['tool']}({first.action['input']})"
                    if first and first.action
                    else (first.status if first else "")
                ),
                "final answer": r.final_answer,
                "expected": agents.expected_text(q, today),
                "right": agents.answer_is_right(r.final_answer, agents.expected_text(q, today)),
            }
        )
    return pd.DataFrame(rows)
