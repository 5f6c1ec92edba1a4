"""The language-modelling objective (concept 12): surprisal per token, alternatives, and the
guessing game."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import BLUE, GREY, ORANGE, ink_encoding, ink_for
from components.models import get_trace, load_model
from components.tokens import percent, quoted, short, token_strip, visible
from core import lm_objective as obj
from core.inspect.trace import Trace, token_strings
from core.lm_objective import GAME_TEXTS, new_game, play

SURPRISAL_PARAM = "picked"


PER_ROW = 12


SURPRISAL_SCHEME = "orangered"


def surprisal_frame(s: obj.Surprisal) -> pd.DataFrame:
    """One row per token, the first included (it has no prediction: `bits` is NaN); `ink` is
    the text colour that reads on that cell's fill, from the chart's own colour scale."""
    bits = {int(p): float(b) for p, b in zip(s.positions, s.bits, strict=True)}
    df = pd.DataFrame(
        [
            {
                "position": p,
                "row": p // PER_ROW,
                "col": p % PER_ROW,
                "token": short(t, 11),
                "bits": bits.get(p, float("nan")),
                "p": 2.0 ** -bits[p] if p in bits else float("nan"),
            }
            for p, t in enumerate(s.tokens)
        ]
    )
    top = float(np.nanmax(df["bits"])) if df["bits"].notna().any() else 1.0
    df["ink"] = ink_for(df["bits"].to_numpy(), SURPRISAL_SCHEME, (0.0, top))
    return df


def surprisal_chart(df: pd.DataFrame, picked: int) -> alt.LayerChart:
    """The text as a grid of tokens coloured by surprisal; click one to pick it. Cells share
    the column's width (draw with width="stretch"); a token longer than its cell is cut with
    an ellipsis (hover for it whole)."""
    sel = alt.selection_point(
        name=SURPRISAL_PARAM,
        fields=["position"],
        on="click",
        value=[{"position": picked}],
        toggle=False,
    )
    x = alt.X("col:O", axis=None, scale=alt.Scale(paddingInner=0.08))
    y = alt.Y("row:O", axis=None, scale=alt.Scale(paddingInner=0.15))
    tips = [
        "position",
        "token",
        alt.Tooltip("bits:Q", format=".2f", title="surprisal (bits)"),
        alt.Tooltip("p:Q", format=".2%", title="p(token)"),
    ]
    first = (
        alt.Chart(df)
        .transform_filter("!isValid(datum.bits)")
        .mark_rect(color=GREY)
        .encode(x=x, y=y, tooltip=["position", "token"])
    )
    rect = (
        alt.Chart(df)
        .transform_filter("isValid(datum.bits)")
        .mark_rect(stroke=ORANGE)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "bits:Q",
                title="surprisal (bits)",
                scale=alt.Scale(scheme=SURPRISAL_SCHEME, domainMin=0),
                legend=alt.Legend(
                    orient="top", direction="horizontal", gradientLength=160, titleOrient="left"
                ),
            ),
            strokeWidth=alt.condition(sel, alt.value(3), alt.value(0)),
            tooltip=tips,
        )
        .add_params(sel)
    )
    text = (
        alt.Chart(df)
        .mark_text(font="monospace", fontSize=11, limit=alt.expr("bandwidth('x') - 4"))
        .encode(x=x, y=y, text="token:N", color=ink_encoding(), tooltip=tips)
    )
    return (first + rect + text).properties(height=alt.Step(30))


def picked_position(event: object, default: int) -> int:
    """The clicked position from an Altair selection event, or `default`."""
    try:
        points = event.selection[SURPRISAL_PARAM]  # type: ignore[attr-defined]
        position = int(points[0]["position"])
        return position if position >= 1 else default  # the first token has no prediction
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return default


def alternatives_frame(alt_: obj.Alternatives) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rank": i + 1,
                "token": f"{i + 1}. {visible(t)}",
                "p": float(p),
                "actual": int(alt_.actual_rank or 0) == i + 1,
            }
            for i, (t, p) in enumerate(zip(alt_.tokens, alt_.probs, strict=True))
        ]
    )


def alternatives_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y(
                "token:N",
                sort=alt.SortField("rank"),
                title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=200),
            ),
            x=alt.X("p:Q", title="model's probability", axis=alt.Axis(format="%")),
            color=alt.condition("datum.actual", alt.value(ORANGE), alt.value(BLUE)),
            tooltip=["token", alt.Tooltip("p:Q", format=".2%")],
        )
        .properties(height=alt.Step(22))
    )


def trace_top_tokens(model_id: str, trace: Trace, position: int) -> tuple[str, ...]:
    """The model's top guesses for `position`, decoded (cached per model and ids)."""
    return cached_decode_ids(model_id, tuple(int(i) for i in trace.top_ids[position - 1]))


@st.cache_data(max_entries=64)
def cached_decode_ids(model_id: str, ids: tuple[int, ...]) -> tuple[str, ...]:
    return token_strings(load_model(model_id).tokenizer, ids)


GAME_KEY = "lm_objective.game"
labels = ["A story", "Capitals", "A recipe", "Python code", "The text above"]


@st.fragment
def game_section(lm, text: str) -> None:
    """The guessing game: the learner and the model guess each next token of a text."""
    choice = st.selectbox("Text to play on", labels, key="lm_objective.game_text")
    game_text = text if choice == labels[-1] else GAME_TEXTS[labels.index(choice)]
    g_trace = get_trace(game_text)
    if g_trace.length < 2:
        st.info("This text is a single token: pick another one.")
        return
    restart = st.button("Start again", key="lm_objective.restart")
    saved = st.session_state.get(GAME_KEY)
    if restart or saved is None or saved[0] != (lm.model_id, game_text):
        saved = ((lm.model_id, game_text), new_game(g_trace))
    key, state = saved
    with st.form("lm_objective.form", clear_on_submit=True, border=False):
        guess = st.text_input(
            "Your guess for the next token",
            key="lm_objective.guess",
            max_chars=100,
            placeholder="a word or word piece",
            help="Spaces and case are ignored; submit it empty if you think "
            "a space or line break comes next.",
        )
        submitted = st.form_submit_button(
            "Guess", key="lm_objective.submit", disabled=state.position >= g_trace.length
        )
    if submitted and state.position < g_trace.length:
        top1 = cached_decode_ids(lm.model_id, (int(g_trace.top_ids[state.position - 1, 0]),))[0]
        state = play(state, g_trace, guess, top1)
    st.session_state[GAME_KEY] = (key, state)
    n = len(state.rounds)
    s1, s2, s3 = st.columns(3)
    s1.metric("you", f"{state.player_score} / {n}")
    s2.metric("the model", f"{state.model_score} / {n}")
    s3.metric("tokens left", f"{g_trace.length - state.position}")
    st.markdown("**The text so far** (you guess what comes after the last token):")
    token_strip(g_trace.tokens[: state.position])
    if state.rounds:
        r = state.rounds[-1]
        you = (
            "you were **right**" if r.player_right else (f"you typed {quoted(r.guess)}, **wrong**")
        )
        model = "**right**" if r.model_right else "**wrong**"
        st.markdown(
            f"The next token was {quoted(r.actual)}: {you}. The model's guess was "
            f"{quoted(r.model_guess)}, {model}; it gave the real token "
            f"p = {percent(r.model_prob_of_actual)}."
        )
    if state.position >= g_trace.length:
        st.success(
            f"End of the text: you {state.player_score}, the model {state.model_score} "
            f"out of {n}. Press 'Start again' or pick another text."
        )
