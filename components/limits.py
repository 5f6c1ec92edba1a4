"""What LLMs can't do: each probe as a job, its results as frames and charts."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import draw_chart, fitting_columns
from components.frame import safe_page_link
from components.jobs import run_job
from components.models import load_model
from core import limits as L

# Seconds per greedy token and per single forward read on 2 idle cores (decoding runs at about
# 20 tokens/s there, DESIGN.md; a read of a short prompt is an upper guess); every estimate
# below multiplies them by the work the probe's settings ask for.
SECONDS_PER_TOKEN = 0.08
SECONDS_PER_READ = 0.25


def probe_job(name: str, model_id: str, settings: tuple, work, estimate_s: float, caps: str):
    """A probe's start button, progress and shared result (None until it has run)."""
    return run_job(
        ("limits", name, model_id, settings),
        lambda report: work(load_model(model_id), report),
        start_label=f"Run the {name} probe",
        estimate_s=estimate_s,
        caps=caps,
    )


def links(*pages: tuple[str, str]) -> None:
    for page, label in pages:
        safe_page_link(page, label=label, icon=":material/arrow_forward:")


def counting_frame(res: L.CountingResult) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "word as asked": [L.spell_out(w) if res.spelled else w for w in res.words],
            "its tokens": [" | ".join(p) for p in res.pieces],
            f"true count of '{res.letter}'": res.truth,
            "model's answer": [a.strip() for a in res.answers],
            "parsed": [str(p) if p is not None else "none" for p in res.predicted],
            "right": [p == t for p, t in zip(res.predicted, res.truth)],
        }
    )


def addition_frame(res: L.AdditionResult) -> pd.DataFrame:
    return pd.DataFrame(
        res.by_digits(), columns=["digits", "exact accuracy", "per-digit accuracy", "problems"]
    )


def addition_chart(df: pd.DataFrame) -> alt.Chart:
    long = df.melt(
        id_vars=["digits"],
        value_vars=["exact accuracy", "per-digit accuracy"],
        var_name="score",
        value_name="accuracy",
    )
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("digits:O", title="digits per operand"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy"),
            color=alt.Color("score:N", title=None),
            tooltip=["digits", "score", alt.Tooltip("accuracy:Q", format=".2f")],
        )
        .properties(height=260)
    )


def facts_frame(res: L.FactResult) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": res.questions,
            "right answer": res.gold,
            "model's answer": [a.strip() for a in res.answers],
            "right": res.correct,
            "p(its first token)": res.confidence,
            "p(right answer's first token)": res.p_gold,
        }
    )


def confidence_chart(df: pd.DataFrame) -> alt.Chart:
    data = df.assign(outcome=df["right"].map({True: "right", False: "wrong"}))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                "p(its first token):Q",
                scale=alt.Scale(domain=[0, 1]),
                title="probability of the answer's first token",
            ),
            # every bar named: at 18 px a bar Vega dropped every other country as overlapping
            y=alt.Y("question:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=["right", "wrong"], range=["#2ca02c", "#d62728"]),
                title=None,
            ),
            tooltip=[
                "question",
                "right answer",
                "model's answer",
                alt.Tooltip("p(its first token):Q", format=".2f"),
            ],
        )
        .properties(height=alt.Step(BAR_STEP))
    )


BAR_STEP = 22  # px per bar: room for a 12 px label (18 px hid every other one)


def pronoun_chart(res: L.PronounResult) -> alt.Chart:
    df = pd.DataFrame(
        {"occupation": res.occupations, "p(she)": res.p_she, "p(he) + p(she)": res.pronoun_mass}
    )
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(
                "p(she):Q",
                scale=alt.Scale(domain=[0, 1]),
                title="p(she) / (p(she) + p(he)) for the next token",
            ),
            y=alt.Y("occupation:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                "occupation",
                alt.Tooltip("p(she):Q", format=".2f"),
                alt.Tooltip("p(he) + p(she):Q", format=".2f"),
            ],
        )
    )
    rule = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[4, 3]).encode(x="x:Q")
    return (bars + rule).properties(height=BAR_STEP * len(df) + 20)


def years_chart(res: L.YearResult) -> alt.Chart:
    rows = [
        {"prompt": p, "year": y, "probability": q}
        for p, probs in zip(res.prompts, res.probs)
        for y, q in zip(res.years, probs)
    ]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "year:Q",
                scale=alt.Scale(domain=[min(res.years), max(res.years)]),
                axis=alt.Axis(format="d"),
                title="year",
            ),
            y=alt.Y("probability:Q", title="p(year), renormalised over the candidate years"),
            color=alt.Color(
                "prompt:N",
                title=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(res.prompts)),
            ),
            tooltip=["prompt", "year", alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(height=280)
    )


# --- one section per probe: explanation, button, results, the page explaining the cause ------


def counting_section(model_id: str) -> None:
    tok = load_model(model_id).tokenizer
    cut = "|".join(
        tok.decode([i]) for i in tok("strawberry", add_special_tokens=False)["input_ids"]
    )
    st.markdown(
        "Ask how many times **r** occurs in ten words. The model never sees letters, "
        f"only tokens (`strawberry` is `{cut}`), so the count is not in its input "
        "directly. Spelled out with spaces, every letter is its own token: if tokenization "
        "were the whole story, that version would be easy."
    )
    spelled = st.toggle("Spell each word out with spaces (s t r a w …)", key="limits.spelled")
    n = len(L.LETTER_WORDS)
    res = probe_job(
        "letter counting",
        model_id,
        (spelled,),
        lambda lm, rep: L.probe_counting(lm, spelled=spelled, report=rep),
        n * 6 * SECONDS_PER_TOKEN,
        f"{n} words, at most 6 answer tokens each, greedy.",
    )
    if res is not None:
        right = sum(p == t for p, t in zip(res.predicted, res.truth))
        st.metric("Counted right", f"{right} of {n}", help="Parsed from the model's own answers.")
        st.dataframe(counting_frame(res), hide_index=True, width="stretch")
    links(("pages/06_tokenization.py", "Why: the model reads tokens, not letters (06)"))


def addition_section(model_id: str) -> None:
    st.markdown(
        "Add two numbers with the same count of digits; the answer is prefilled up to "
        "`a + b =` so only the digits are left to the model. **Exact** asks for the whole "
        "sum; **per digit** counts the answer's digits that match, aligned from the right."
    )
    c1, c2 = st.columns(2)
    digits = c1.slider("Up to digits per operand", 1, 5, 5, key="limits.digits")
    per = c2.slider("Problems per digit count", 2, 10, 10, key="limits.per_digit")
    tokens = sum(per * (d + 3) for d in range(1, digits + 1))
    res = probe_job(
        "addition",
        model_id,
        (digits, per),
        lambda lm, rep: L.probe_addition(lm, digits, per, 0, rep),
        tokens * SECONDS_PER_TOKEN,
        f"{digits * per} sums, at most digits + 3 answer tokens each, greedy.",
    )
    if res is not None:
        df = addition_frame(res)
        draw_chart(addition_chart(df))
        st.dataframe(df, hide_index=True, width="stretch")
        with st.expander("Every sum and the model's answer"):
            st.dataframe(
                pd.DataFrame(
                    {
                        "sum": [f"{a} + {b}" for _, a, b in res.problems],
                        "true": [a + b for _, a, b in res.problems],
                        "model wrote": [x.strip() for x in res.answers],
                        "parsed": [str(p) for p in res.predicted],
                    }
                ),
                hide_index=True,
                width="stretch",
            )
    links(
        ("pages/06_tokenization.py", "How numbers become tokens (06)"),
        ("pages/12_lm_objective.py", "It predicts likely text, it does not compute (12)"),
    )


def capitals_section(model_id: str) -> None:
    st.markdown(
        "Capital cities, answer prefilled up to `The capital of X is`. The bar is the "
        "probability of the first token the model actually said; red bars are wrong "
        "answers. A probability is not a guarantee: look for red bars longer than green."
    )
    n = len(L.CAPITALS)
    res = probe_job(
        "capital cities",
        model_id,
        (),
        lambda lm, rep: L.probe_capitals(lm, report=rep),
        n * (5 * SECONDS_PER_TOKEN + SECONDS_PER_READ),
        f"{n} countries, at most 5 answer tokens each, greedy.",
    )
    if res is not None:
        df = facts_frame(res)
        wrong = df[~df["right"]]
        min_right = df[df["right"]]["p(its first token)"].min() if df["right"].any() else 1.0
        over = int((wrong["p(its first token)"] > min_right).sum())
        st.metric(
            "Right",
            f"{int(df['right'].sum())} of {n}",
            help="An answer is right if its first clause names the capital.",
        )
        st.markdown(
            f"{len(wrong)} wrong; {over} of them more confident than the least confident "
            "right answer."
            if len(wrong)
            else "No wrong answers on this list."
        )
        draw_chart(confidence_chart(df))
        st.dataframe(df, hide_index=True, width="stretch")
    links(("pages/19_decoding.py", "Where the probabilities come from (19)"))


def fictions_section(model_id: str) -> None:
    st.markdown(
        "Five questions about things that do not exist (a made-up engine, country, "
        "novel, physicist and treaty). An answer **declines** if it says it does not "
        "know (phrases like *not aware*, *no information*, *fictional*); otherwise it "
        "answered as if the thing were real."
    )
    n = len(L.FICTIONS)
    res = probe_job(
        "made-up entities",
        model_id,
        (),
        lambda lm, rep: L.probe_fictions(lm, report=rep),
        n * 40 * SECONDS_PER_TOKEN,
        f"{n} questions, at most 40 tokens each, greedy.",
    )
    if res is not None:
        fluent = round(res.fluent_share * n)
        st.metric("Answered as if real", f"{fluent} of {n}")
        for q, a, d in zip(res.questions, res.answers, res.declined):
            st.markdown(f"**{'declined' if d else 'answered'}** · {q}")
            st.text(a.strip() or "(empty answer)")
    links(("pages/12_lm_objective.py", "Trained to continue text plausibly, not truthfully (12)"))


def rephrasing_section(model_id: str) -> None:
    st.markdown(
        "Ten yes/no facts, each asked three ways. **Consistent** means all three "
        "phrasings got the same yes or no; a fact can be consistent and wrong."
    )
    total = sum(len(q) for _, q in L.PARAPHRASES)
    res = probe_job(
        "rephrasing",
        model_id,
        (),
        lambda lm, rep: L.probe_rephrasing(lm, report=rep),
        total * 3 * SECONDS_PER_TOKEN,
        f"{total} questions, 3 answer tokens each.",
    )
    if res is not None:
        c1, c2 = st.columns(2)
        c1.metric("Consistent across phrasings", f"{sum(res.consistent)} of {len(res.gold)}")
        c2.metric("Phrasings answered right", f"{res.accuracy:.0%}")
        flat = [p for row in res.parsed for p in row]
        top = max(set(flat), key=flat.count)
        if flat.count(top) >= 0.8 * len(flat):
            st.markdown(
                f"It answered **{top or 'neither yes nor no'}** to {flat.count(top)} of "
                f"{len(flat)} phrasings: consistency that comes from one fixed answer, "
                "not from knowing the facts."
            )
        rows = [
            {"phrasing": q, "right answer": g, "model": a.strip(), "parsed": p or "none"}
            for g, qs, ans, ps in zip(res.gold, res.questions, res.answers, res.parsed)
            for q, a, p in zip(qs, ans, ps)
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    links(("pages/23_prompting.py", "The wording of a prompt changes the answer (23)"))


def pronouns_section(model_id: str) -> None:
    st.markdown(
        "`The nurse finished the work early, and then` … which pronoun comes next? The "
        "bar is p(she) over the two pronouns: 0.5 would be no preference. The model "
        "learnt these rates from its training text."
    )
    n = len(L.OCCUPATIONS)
    res = probe_job(
        "pronouns",
        model_id,
        (),
        lambda lm, rep: L.probe_pronouns(lm, report=rep),
        n * SECONDS_PER_READ,
        f"{n} occupations, one forward pass each.",
    )
    if res is not None:
        draw_chart(pronoun_chart(res))
        st.caption(
            f"p(he) + p(she) ranges from {min(res.pronoun_mass):.0%} to "
            f"{max(res.pronoun_mass):.0%} of the whole next-token distribution."
        )
    links(
        ("pages/13_pretraining_data.py", "What the training data contains (13)"),
        ("pages/07_embeddings.py", "Associations live in the vectors (07)"),
    )


def years_section(model_id: str) -> None:
    st.markdown(
        f"Which year does the model think it is? For each prompt, every year "
        f"{L.YEARS[0]}-{L.YEARS[-1]} is scored as a continuation, and the scores are "
        "renormalised. Years after its training data was collected are rare in that data, so "
        "look for where each curve falls away: that is the knowledge cut-off."
    )
    res = probe_job(
        "knowledge cut-off",
        model_id,
        (),
        lambda lm, rep: L.probe_years(lm, report=rep),
        len(L.YEAR_PROMPTS) * 4 * SECONDS_PER_READ,
        f"{len(L.YEAR_PROMPTS)} prompts x {len(L.YEARS)} candidate years, batched.",
    )
    if res is not None:
        draw_chart(years_chart(res))
        st.markdown(
            " · ".join(f"`{p}` → most likely **{res.mode(i)}**" for i, p in enumerate(res.prompts))
        )
    links(("pages/13_pretraining_data.py", "The data has a date (13)"))
