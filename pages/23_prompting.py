"""23 Prompt Engineering: the same task under several prompt styles, compared on the model's answers."""

from __future__ import annotations

import streamlit as st

from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.jobs import run_job
from components.models import current_model_id
from components.preamble import model_page
from components.prompting import (
    cached_reviews,
    condition_for,
    measure_all,
    measure_estimate_s,
    measured_just_now,
    missing,
    strip_chart,
    strip_frame,
    summary_column_config,
    summary_frame,
)
from components.questions import check_yourself
from core import prompting as P
from core.shared.chat import special_tokens

page_frame()
with intro():
    st.markdown(
        "The same model answers the same task better or worse depending only on **how it is asked**. "
        "Here SmolLM2 labels 30 one-line reviews as positive or negative, asked four ways: "
        "**zero-shot** (just the question), a **system prompt** describing the job, **few-shot** "
        "(k solved examples first, as earlier chat turns) and **step-by-step** (it writes a short "
        "reasoning, then answers). The answer is not parsed from text: at the answer position we "
        "read the model's probabilities of the label tokens (`positive`, ` positive`, `Positive`, … "
        "and the same for negative) and renormalise them, so p(positive) + p(negative) = 1. "
        "**Label mass** is how much of the whole next-token distribution falls on those tokens: "
        "low mass means the model was about to say something else entirely."
    )
lm, _ = model_page(prompt=False)
model_id = current_model_id()
reviews, pool = cached_reviews()

c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
techniques = c1.multiselect(
    "Techniques",
    list(P.TECHNIQUES),
    default=list(P.TECHNIQUES),
    key="prompting.techniques",
    bind="query-params",
)
k = c2.slider("Few-shot k", 1, len(pool), 3, key="prompting.k", bind="query-params")
seed = c3.number_input(
    "Example seed",
    0,
    99,
    0,
    key="prompting.seed",
    help="Which examples from the pool, in which order.",
)
think = c4.slider(
    "Thinking tokens",
    0,
    48,
    16,
    8,
    key="prompting.think",
    help="Step-by-step: greedy tokens the model writes before it is asked for the "
    "label (capped at 48 to keep the run under a few minutes).",
)
with st.expander("Edit the prompt template (`{review}` marks where each review goes)"):
    typed = st.text_area(
        "Template", P.DEFAULT_TEMPLATE, key="prompting.template", height=90, max_chars=20_000
    )
checked = P.check_template(typed, special_tokens(lm.tokenizer))
for note in checked.notes:
    st.warning(note)
if not techniques:
    st.info("Pick at least one technique to measure.")
    st.stop()

conditions = [condition_for(t, checked.text, k, int(seed), think) for t in techniques]
with st.expander(f"The exact prompt for review 1 under **{techniques[0]}**"):
    prefix, tail = P.split_prompt(lm.tokenizer, conditions[0], pool)
    st.code(prefix + tail.replace(P.PLACEHOLDER, reviews[0].text), language=None)
unmeasured = missing(model_id, conditions)
results = run_job(
    ("prompting", model_id, tuple(conditions)),
    lambda report: measure_all(model_id, conditions, report),
    start_label=f"Measure {len(conditions)} technique(s) on {len(reviews)} reviews",
    estimate_s=measure_estimate_s(unmeasured, len(reviews)),
    caps=f"{len(unmeasured)} of {len(conditions)} not measured yet with these settings; one forward "
    "pass per review (the shared prefix is computed once), plus the thinking tokens.",
)
if results is None:
    check_yourself()  # the questions before the page waits for its job
    st.stop()
if measured_just_now():  # draw again without the "not measured yet" caption above
    st.rerun()


@st.fragment
def scores() -> None:
    threshold = st.slider(
        "Decision threshold on p(positive)", 0.0, 1.0, 0.5, 0.01, key="prompting.threshold"
    )
    draw_chart(strip_chart(strip_frame(results, reviews), threshold))
    table = summary_frame(results, threshold)
    st.dataframe(
        table, hide_index=True, width="stretch", column_config=summary_column_config(table)
    )
    best = table.loc[table["AUC"].idxmax()]
    worst_mass = table.loc[table["mass on label tokens"].idxmin()]
    st.markdown(
        f"Best ranking: **{best['technique']}**, AUC {best['AUC']:.2f} (1.0 = every positive "
        f"review scored above every negative one), accuracy {best['accuracy at 0.5']:.2f} at the "
        f"fixed 0.5 cut and {best['best cut' + chr(39) + 's accuracy']:.2f} at its best cut. "
        f"Least on format: **{worst_mass['technique']}**, only "
        f"{worst_mass['mass on label tokens']:.0%} of the probability on label tokens. "
        "Accuracy at one threshold can hide a good ranking: move the threshold and watch."
    )


scores()
show_code(P.read_labels, P.measure_condition, P.auc)

check_yourself()
