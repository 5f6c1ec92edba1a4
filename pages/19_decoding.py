from __future__ import annotations

import pandas as pd
import streamlit as st

from components.charts import draw_chart
from components.decoding import (
    PAGE_DEFAULTS,
    beam_tree_chart,
    cached_beam,
    cached_strategy,
    distribution_chart,
    fixed,
    strategies,
)
from components.frame import page_frame, show_code
from components.models import current_model_id, get_lm, get_prompt, get_trace
from components.preamble import note_truncation
from components.questions import check_yourself
from core.decoding import next_token_view
from core.runtime import generation
from core.runtime.generation import DecodingSettings

page_frame()

st.markdown(
    "After reading the prompt the model outputs a score (logit) for **every** token in its "
    "vocabulary; softmax turns them into probabilities. *Decoding* decides which token to take. "
    "**Greedy** always takes the most likely one; **sampling** draws at random, after reshaping "
    "the distribution: **temperature** divides the logits (low = sharper, high = flatter), "
    "**top-k** keeps the k most likely tokens, **top-p** (nucleus) keeps the smallest set whose "
    "probabilities add up to p, and **min-p** drops tokens less likely than min-p times the top "
    "one. **Beam search** keeps several candidate continuations and picks the most probable "
    "whole sequence. Move a slider and watch which tokens survive."
)
st.latex(r"p_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}")

TOP_SHOWN = 25  # tokens drawn in the chart; the metrics cover the whole vocabulary
lm = get_lm()
model_id = current_model_id()
prompt = get_prompt()
if not prompt.strip():
    st.info(
        "The shared prompt in the sidebar is empty, so the model predicts the first token "
        "of a text from nothing but its start token."
    )
use_chat = st.toggle(
    "Wrap the prompt in the chat template (as a user message)",
    key="decoding.chat",
    disabled=not getattr(lm.tokenizer, "chat_template", None),
)
text = prompt
if use_chat:
    text = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
trace = get_trace(text)
note_truncation(trace.truncated_from, trace.length)
context_ids = tuple(int(i) for i in trace.ids)
with st.expander(f"The model sees {trace.length} tokens", expanded=False):
    st.text(lm.tokenizer.decode(list(context_ids), clean_up_tokenization_spaces=False)[-3000:])


D = PAGE_DEFAULTS


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
def distribution() -> None:
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


distribution()

st.subheader("Strategies side by side")
st.markdown(
    "Each strategy continues the same prompt from the **same random seed**, using the "
    "sliders above (top-k 50 when top-k is off). Same seed, same settings: same text."
)
g1, g2, g3 = st.columns(3)
n_runs = len(strategies(current_settings(), 0, 1.0)) + 1  # the samplers, then beam search
new_tokens = g1.slider(
    "New tokens",
    4,
    48,
    D.max_new_tokens,
    key="decoding.new_tokens",
    help=f"Capped at 48 to keep the {n_runs} runs short on a laptop CPU.",
)
seed = g2.number_input("Seed", 0, 2**31 - 1, 0, key="decoding.seed")
beams = g3.slider("Beam width", 1, 6, 3, key="decoding.beams")

if st.button("Generate side by side", type="primary", key="decoding.generate"):
    s = current_settings(new_tokens, int(seed))
    plan = strategies(s, s.top_k, s.top_p)
    rows = []
    progress = st.progress(0.0, text="Generating…")
    for i, (name, settings) in enumerate(plan.items()):
        out = cached_strategy(model_id, context_ids, name, settings)
        rows.append(
            {
                "strategy": out.strategy,
                "output": out.text,
                "tokens": out.tokens,
                "mean p of chosen tokens": round(out.mean_prob, 3),
                "settings": out.settings,
            }
        )
        progress.progress((i + 1) / (len(plan) + 1), text=f"{name} done")
    result = cached_beam(model_id, context_ids, int(beams), int(new_tokens))
    progress.progress(1.0, text="Beam search done")
    best = lm.tokenizer.decode(list(result.sequences[0]), clean_up_tokenization_spaces=False)
    rows.append(
        {
            "strategy": f"Beam search (width {beams})",
            "output": best,
            "tokens": len(result.sequences[0]),
            "mean p of chosen tokens": None,
            "settings": f"best of {len(result.sequences)} by length-normalised log p",
        }
    )
    st.session_state["decoding.results"] = (rows, result)

if "decoding.results" in st.session_state:
    rows, result = st.session_state["decoding.results"]
    for row in rows:
        st.markdown(f"**{row['strategy']}** · {row['tokens']} tokens")
        st.text(row["output"] or "(stopped at once: the first token chosen was end-of-text)")
    st.dataframe(pd.DataFrame(rows).drop(columns="output"), hide_index=True, width="stretch")
    st.markdown(
        "**The beam search tree.** Each column is one generated token; each row a beam "
        "kept at that step, joined to the beam it extended. The winning path is pink."
    )
    draw_chart(beam_tree_chart(result, lm.tokenizer))
    st.dataframe(
        pd.DataFrame(
            {
                "rank": range(1, len(result.sequences) + 1),
                "sequence": [
                    lm.tokenizer.decode(list(s), clean_up_tokenization_spaces=False)
                    for s in result.sequences
                ],
                "length-normalised log p": [round(x, 3) for x in result.scores],
            }
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption(
        f"Press the button to run all {n_runs}: the {n_runs - 1} sampling strategies, "
        "then beam search. About as many seconds as new tokens on two cores."
    )

show_code(generation.filter_logits, generation.apply_top_p, generation.generate_stream)

check_yourself()
