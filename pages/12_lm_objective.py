"""12 The Language Modeling Objective: next-token probabilities and the loss on each token, then your own guess."""

from __future__ import annotations

import numpy as np
import streamlit as st

from components import lm_objective as lo
from components.charts import draw_chart
from components.frame import follow_shared_prompt, intro, page_frame, show_code
from components.models import get_trace
from components.preamble import model_page, note_truncation, prompt_or_default
from components.questions import check_yourself
from components.tokens import percent, quoted, token_strip
from core.inspect.trace import TRACE_TOKEN_CAP
from core.lm_objective import alternatives, play, surprisal

page_frame()
with intro():
    st.markdown(
        "A language model is trained on one task: given the tokens so far, put probability on the "
        "token that really comes next. How badly it did at one token is its **surprisal**, "
        "−log p(token | everything before): 0 when it was certain and right, large when the token "
        "was a shock. The training loss is the mean surprisal over the text (in nats), and "
        "**perplexity** = e^loss is the number of equally likely choices that would leave the "
        "model as unsure as it is on average. Type any text to see where the model was surprised, "
        "click a token to see what it expected instead, then play the same game yourself."
    )

lm, _ = model_page(prompt=False)
follow_shared_prompt("lm_objective.text")
text = st.text_area(
    "Text to score",
    key="lm_objective.text",
    max_chars=20_000,
    height=90,
    help="Follows the shared prompt in the sidebar; edits here stay on this page "
    "until the shared prompt changes.",
)
text = prompt_or_default(text, "The text")
trace = get_trace(text)
note_truncation(trace.truncated_from, trace.length)
st.caption(f"At most the first {TRACE_TOKEN_CAP} tokens are scored (here {trace.length}).")


@st.fragment
def scores() -> None:
    s = surprisal(trace)
    if s.nats.size == 0:
        st.info("One token has nothing before it to predict it from: add a few words.")
        return
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("tokens predicted", f"{s.nats.size}", help="Every token but the first.")
    m2.metric(
        "loss (mean surprisal)",
        f"{s.mean_nats:.3f} nats",
        help="= model(ids, labels=ids).loss, the quantity training minimises.",
    )
    m3.metric(
        "bits per token",
        f"{s.mean_bits:.2f}",
        help="Mean surprisal in bits: the loss divided by ln 2.",
    )
    m4.metric("perplexity", f"{s.perplexity:,.1f}", help="exp(loss)")
    worst = int(s.positions[int(np.argmax(s.nats))])
    df = lo.surprisal_frame(s)
    event = draw_chart(lo.surprisal_chart(df, worst), on_select="rerun", key="lm_objective.click")
    picked = lo.picked_position(event, worst)
    st.caption(
        "Each box is one token, coloured by its surprisal in bits (the first token, grey, "
        "has nothing before it to be predicted from); text is white or dark, whichever "
        "reads on its colour. Click a token to see the model's alternatives there; the most "
        "surprising one is picked to start."
    )
    alt_ = alternatives(trace, picked, lo.trace_top_tokens(lm.model_id, trace, picked))
    c1, c2 = st.columns([2, 3], gap="large")
    with c1:
        st.markdown(f"**Position {alt_.position}.** After the text up to here:")
        token_strip(trace.tokens[max(0, alt_.position - 12) : alt_.position])
        rank = f"rank {alt_.actual_rank} in its list" if alt_.actual_rank else "not in its top 10"
        st.markdown(
            f"the text continues with {quoted(alt_.actual)}, to which the model gave "
            f"p = {percent(alt_.actual_prob)} ({rank}): surprisal "
            f"{alt_.actual_bits:.2f} bits."
        )
    with c2:
        draw_chart(lo.alternatives_chart(lo.alternatives_frame(alt_)))
        st.caption("The model's 10 most likely next tokens there; orange is the text's own.")


scores()

st.subheader("Your turn: guess the next token")
lo.game_section(lm, text)
show_code(surprisal, alternatives, play)

check_yourself()
