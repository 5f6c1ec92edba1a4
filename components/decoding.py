"""Charts and cached generation for the decoding page."""

from __future__ import annotations

from dataclasses import dataclass, replace

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import draw_chart
from components.jobs import Report, run_job
from components.models import load_model
from components.tokens import visible
from core.decoding import BeamResult, NextTokenView, beam_search, next_token_view
from core.runtime.generation import DecodingSettings, generate_stream

# The sliders' starting values: each of the five strategies is a different sampler here (with
# temperature 1 and top-p 1, "top-p", "temperature" and "all your filters" would be the same).
PAGE_DEFAULTS = DecodingSettings(
    temperature=1.3, top_k=0, top_p=0.8, min_p=0.1, repetition_penalty=1.0, max_new_tokens=24
)


def fixed(value: float, digits: int = 2, signed: bool = False) -> str:
    """A number with `digits` decimals that never reads "-0.00" (rounding to zero drops the sign)."""
    rounded = round(float(value), digits) + 0.0  # -0.0 + 0.0 == +0.0
    return f"{rounded:+.{digits}f}" if signed else f"{rounded:.{digits}f}"


STAGES = ("before filters", "after filters")  # the legend read "1 before filters"


def distribution_chart(view: NextTokenView, labels: list[str]) -> alt.Chart:
    """The top tokens' probabilities before and after the filters; removed tokens in grey."""
    rows = []
    for rank, (tok, p0, p1) in enumerate(zip(labels, view.original, view.filtered)):
        token = f"{rank + 1:>2}. {visible(tok)}"
        kept = p1 > 0
        rows.append(
            {
                "token": token,
                "rank": rank,
                "stage": "before filters",
                "probability": p0,
                "status": "kept" if kept else "removed",
            }
        )
        rows.append(
            {
                "token": token,
                "rank": rank,
                "stage": "after filters",
                "probability": p1,
                "status": "kept" if kept else "removed",
            }
        )
    df = pd.DataFrame(rows)
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y(
                "token:N",
                sort=alt.SortField("rank"),
                title=None,
                axis=alt.Axis(labelLimit=160, labelFont="monospace"),
            ),
            yOffset=alt.YOffset("stage:N", sort=list(STAGES)),  # before above after
            x=alt.X("probability:Q", title="probability", axis=alt.Axis(format="%")),
            color=alt.Color(
                "stage:N",
                title=None,
                scale=alt.Scale(domain=list(STAGES), range=["#adb5bd", "#4C6EF5"]),
                legend=alt.Legend(orient="top"),
            ),
            opacity=alt.condition(alt.datum.status == "kept", alt.value(1.0), alt.value(0.35)),
            tooltip=["token", "stage", alt.Tooltip("probability:Q", format=".4f"), "status"],
        )
        .properties(height=alt.Step(9))
    )


@dataclass(frozen=True)
class StrategyOutput:
    strategy: str
    settings: str
    text: str
    tokens: int
    mean_prob: float


def strategies(s: DecodingSettings, top_k: int, top_p: float) -> dict[str, DecodingSettings]:
    """Greedy, top-k, top-p and plain temperature sampling, all from the same seed."""
    t = s.temperature if s.temperature > 0 else 1.0
    base = DecodingSettings(
        repetition_penalty=s.repetition_penalty, max_new_tokens=s.max_new_tokens, seed=s.seed
    )
    return {
        "Greedy": replace(base, temperature=0.0),
        f"Top-k (k={top_k or 50})": replace(base, temperature=1.0, top_k=top_k or 50),
        f"Top-p (p={top_p:.2f})": replace(base, temperature=1.0, top_p=top_p),
        f"Temperature (T={t:.2f})": replace(base, temperature=t),
        "All your filters": s,
    }


def _describe(s: DecodingSettings) -> str:
    if s.greedy:
        return f"argmax, repetition penalty {s.repetition_penalty:.2f}"
    return (
        f"T={s.temperature:.2f}, top-k={s.top_k or 'off'}, top-p={s.top_p:.2f}, "
        f"min-p={s.min_p:.2f}, seed {s.seed}"
    )


# Idle-machine seconds per generated token (bench/decoding_bench.py, 24 tokens: the five
# samplers 5.49 s, beam search of width 3 2.3 s); the job store corrects them from real runs.
SAMPLER_TOKEN_S = 0.046
BEAM_TOKEN_S = 0.032


def strategy_output(
    lm, ids: tuple[int, ...], name: str, s: DecodingSettings, report: Report | None = None
) -> StrategyOutput:
    """One strategy's continuation; `report(share, text)` after each token."""
    steps = []
    for step in generate_stream(lm, list(ids), s):
        steps.append(step)
        if report is not None:
            report(len(steps) / max(1, s.max_new_tokens), f"{name}: {len(steps)} tokens")
    text = lm.tokenizer.decode(
        [x.token_id for x in steps], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    mean = sum(x.prob for x in steps) / len(steps) if steps else 0.0
    return StrategyOutput(name, _describe(s), text, len(steps), mean)


def side_by_side_estimate_s(runs: int, new_tokens: int, beams: int) -> float:
    return new_tokens * (runs * SAMPLER_TOKEN_S + beams * BEAM_TOKEN_S)


def side_by_side_job(
    model_id: str, ids: tuple[int, ...], s: DecodingSettings, beams: int
) -> tuple[list[dict], BeamResult] | None:
    """Every sampler from the same seed, then beam search, behind a button (progress, Stop, one
    result shared by every learner): (one row per strategy, the beam search), or None."""
    plan = strategies(s, s.top_k, s.top_p)
    parts = len(plan) + 1

    def work(report: Report) -> tuple[list[dict], BeamResult]:
        lm = load_model(model_id)
        rows = []
        for i, (name, settings) in enumerate(plan.items()):
            sub = lambda f, text="", partial=None, i=i: report((i + f) / parts, text)  # noqa: E731
            out = strategy_output(lm, ids, name, settings, sub)
            rows.append(
                {
                    "strategy": out.strategy,
                    "output": out.text,
                    "tokens": out.tokens,
                    "mean p of chosen tokens": round(out.mean_prob, 3),
                    "settings": out.settings,
                }
            )
        report(len(plan) / parts, f"Beam search, width {beams}")
        result = beam_search(lm, ids, beams, s.max_new_tokens)
        rows.append(
            {
                "strategy": f"Beam search (width {beams})",
                "output": lm.tokenizer.decode(
                    list(result.sequences[0]), clean_up_tokenization_spaces=False
                ),
                "tokens": len(result.sequences[0]),
                "mean p of chosen tokens": None,
                "settings": f"best of {len(result.sequences)} by length-normalised log p",
            }
        )
        return rows, result

    return run_job(
        ("decoding", "side_by_side", model_id, ids, tuple(plan.items()), beams),
        work,
        start_label="Generate side by side",
        estimate_s=side_by_side_estimate_s(len(plan), s.max_new_tokens, beams),
        caps=f"{len(plan)} samplers and beam search, {s.max_new_tokens} new tokens each.",
    )


PROMPT_MARK = "…"  # stands for the prompt before a continuation


def continuation(text: str) -> str:
    """A continuation as `st.text` shows it, after "…" for the prompt: Streamlit strips a
    text's leading whitespace, and a continuation's first space is part of what was chosen."""
    return PROMPT_MARK + text if text else ""


def beam_lines(result: BeamResult, tokenizer) -> tuple[str, list[str]]:
    """The beams' shared start and each beam from where they part, so the texts that a table
    cell would cut at the same width read apart: (shared start, one line per beam)."""
    seqs = [list(s) for s in result.sequences]
    common = 0
    while seqs and all(len(s) > common for s in seqs) and len({s[common] for s in seqs}) == 1:
        common += 1
    if len(seqs) == 1:
        common = 0
    decode = lambda ids: tokenizer.decode(ids, clean_up_tokenization_spaces=False)  # noqa: E731
    shared = decode(seqs[0][:common]) if seqs else ""
    lines = [
        f"{rank}. (log p per token {score:.3f}) {PROMPT_MARK}{decode(s[common:]) or '(ends here)'}"
        for rank, (s, score) in enumerate(zip(seqs, result.scores), start=1)
    ]
    return shared, lines


def beam_tree_chart(result: BeamResult, tokenizer) -> alt.Chart:
    """Every kept beam at every step; lines join a token to the beam it extended."""
    nodes = pd.DataFrame(
        [
            {
                "step": n.step,
                "beam": n.beam,
                "parent": n.parent,
                "token": visible(n.text),
                "log p": n.score,
            }
            for n in result.tree
        ]
    )
    nodes["best"] = best_path_flags(result)
    steps = int(nodes["step"].max()) + 1
    edges = []
    for n in result.tree:
        if n.step > 0:
            edges.append({"step": n.step - 1, "beam": n.parent, "step2": n.step, "beam2": n.beam})
    base_x = alt.X("step:Q", title="generated token #", axis=alt.Axis(tickMinStep=1))
    lines = (
        alt.Chart(pd.DataFrame(edges))
        .mark_rule(color="#868e96", opacity=0.5)  # grey that reads on both themes
        .encode(
            x=base_x,
            y=alt.Y(
                "beam:Q",
                title="beam rank",
                scale=alt.Scale(reverse=True),
                axis=alt.Axis(tickMinStep=1),
            ),
            x2="step2:Q",
            y2="beam2:Q",
        )
        if edges
        else None
    )
    labels = (
        alt.Chart(nodes)
        # a label is never wider than its column (it overlapped its neighbours at 24 tokens);
        # the tooltip holds the whole token
        .mark_text(fontSize=12, fontWeight="bold", limit=alt.expr(f"max(8, width / {steps} - 4)"))
        .encode(
            x=base_x,
            y=alt.Y("beam:Q", scale=alt.Scale(reverse=True)),
            text="token:N",
            tooltip=["step", "beam", "token", alt.Tooltip("log p:Q", format=".2f")],
        )
    )
    # the winning path in pink; the other beams' tokens unstyled, so `draw_chart` gives them the
    # theme's ink (a fixed dark grey was unreadable on the dark theme)
    best = labels.transform_filter(alt.datum.best).mark_text(
        fontSize=12,
        fontWeight="bold",
        limit=alt.expr(f"max(8, width / {steps} - 4)"),
        color="#d6336c",
    )
    layers = [lines] if lines is not None else []
    chart = alt.layer(*layers, labels.transform_filter(~alt.datum.best), best)
    return chart.properties(height=60 + 45 * (int(nodes["beam"].max()) + 1))


def best_path_flags(result: BeamResult) -> list[bool]:
    """Which tree nodes lie on the winning sequence (its final end-of-text token is not drawn)."""
    at = {(n.step, n.beam): n for n in result.tree}
    best = result.sequences[0] if result.sequences else ()
    for target in (best, best[:-1]):
        last = len(target) - 1
        for (step, _), node in at.items():
            if step != last:
                continue
            path, cur = [], node
            while True:
                path.append(cur)
                if cur.step == 0:
                    break
                cur = at[(cur.step - 1, cur.parent)]
            if tuple(n.token_id for n in reversed(path)) == tuple(target):
                chosen = {id(n) for n in path}
                return [id(n) in chosen for n in result.tree]
    return [False] * len(result.tree)


D = PAGE_DEFAULTS
TOP_SHOWN = 25  # tokens drawn in the chart; the metrics cover the whole vocabulary


def current_settings(new_tokens: int = D.max_new_tokens, seed: int = 0) -> DecodingSettings:
    ss = st.session_state
    return DecodingSettings(
        temperature=ss.get("decoding.temperature", D.temperature),
        top_k=ss.get("decoding.top_k", D.top_k),
        top_p=ss.get("decoding.top_p", D.top_p),
        min_p=ss.get("decoding.min_p", D.min_p),
        repetition_penalty=ss.get("decoding.repetition", D.repetition_penalty),
        max_new_tokens=new_tokens,
        seed=seed,
    )


@st.fragment
def distribution_section(lm, trace, context_ids: tuple[int, ...]) -> None:
    """The five filter sliders, the metrics and the next-token chart (reruns alone)."""
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.slider(
        "Temperature",
        0.0,
        2.0,
        D.temperature,
        0.05,
        key="decoding.temperature",
        bind="query-params",
        help="0 means greedy: only the top token survives.",
    )
    c2.slider(
        "Top-k",
        0,
        200,
        D.top_k,
        1,
        key="decoding.top_k",
        bind="query-params",
        help="0 switches top-k off.",
    )
    c3.slider(
        "Top-p",
        0.01,
        1.0,
        D.top_p,
        0.01,
        key="decoding.top_p",
        bind="query-params",
        help="1.0 switches top-p off.",
    )
    c4.slider(
        "Min-p",
        0.0,
        0.5,
        D.min_p,
        0.01,
        key="decoding.min_p",
        bind="query-params",
        help="0 switches min-p off.",
    )
    c5.slider(
        "Repetition penalty",
        1.0,
        2.0,
        D.repetition_penalty,
        0.05,
        key="decoding.repetition",
        bind="query-params",
        help="Makes every token already in the text (the prompt and each token generated "
        "so far) less likely: its logit is divided by the penalty if positive, "
        "multiplied by it if negative. 1.0 switches it off.",
    )
    s = current_settings()
    view = next_token_view(trace.last_logits, s, context_ids, top=TOP_SHOWN)
    labels = [lm.tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in view.ids]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Tokens that can be drawn",
        f"{view.survivors:,}",
        help=f"of {trace.last_logits.shape[0]:,} in the vocabulary: the tokens whose "
        "probability after the filters is above zero in float32, the precision the "
        "sampler draws in. At a low temperature most probabilities underflow to "
        "exactly 0, so those tokens can never be drawn although no filter removed "
        "them.",
    )
    m2.metric("Entropy before", f"{fixed(view.entropy_before)} bits")
    m3.metric(
        "Entropy after",
        f"{fixed(view.entropy_after)} bits",
        delta=fixed(view.entropy_after - view.entropy_before, signed=True),
        delta_color="off",
    )
    m4.metric("Top token's probability", f"{max(view.filtered):.1%}")
    draw_chart(distribution_chart(view, labels))
    st.caption(
        f"The {TOP_SHOWN} most likely next tokens before filtering. Faded bars were removed; the "
        "blue bars are what sampling actually draws from, renormalised."
    )


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """The strategies' table: mean p to three decimals for every sampler ("0.42" stood next
    to "0.414"), and a dash for beam search, which samples nothing (the table said "None")."""
    df = pd.DataFrame(rows).drop(columns="output")
    col = "mean p of chosen tokens"
    df[col] = [f"{p:.3f}" if p is not None and p == p else "–" for p in df[col]]
    return df


def results_section(lm, rows: list[dict], result: BeamResult) -> None:
    """Each strategy's text, their table, the beam search tree and its ranked sequences."""
    for row in rows:
        st.markdown(f"**{row['strategy']}** · {row['tokens']} tokens")
        st.text(
            continuation(row["output"])
            or "(stopped at once: the first token chosen was end-of-text)"
        )
    st.dataframe(results_frame(rows), hide_index=True, width="stretch")
    st.markdown(
        "**The beam search tree.** Each column is one generated token; each row a beam "
        "kept at that step, joined to the beam it extended. The winning path is pink."
    )
    draw_chart(beam_tree_chart(result, lm.tokenizer))
    shared, lines = beam_lines(result, lm.tokenizer)
    st.markdown(f"**The {len(lines)} finished beams**, best first. They start the same way:")
    st.text(continuation(shared) or "(no shared start)")
    st.markdown("then part (… is the prompt and the shared start):")
    st.text("\n".join(lines))
