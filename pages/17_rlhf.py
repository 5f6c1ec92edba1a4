"""17 RLHF: preference pairs, a Bradley-Terry reward model, best-of-n with its KL, and DPO."""

from __future__ import annotations

import math

import streamlit as st

from components import rlhf as view
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.models import current_model_id
from components.preamble import model_page
from components.questions import check_yourself
from core import fine_tuning as ft
from core import rlhf

page_frame()
lm, _ = model_page(prompt=False)
model_id = current_model_id()
data = view.cached_pairs()

with intro():
    st.markdown(
        "People find it easier to say which of two answers is better than to write the perfect "
        "one. RLHF turns such **preferences** into a **reward model**: a head on the LM that gives "
        "each answer a score r, trained so that the preferred answer scores higher (Bradley-Terry: "
        "P(A preferred over B) = sigmoid(r_A - r_B)). The policy is then pushed towards high "
        "reward, with a **KL penalty** that keeps it close to the original model, because a reward "
        "model is only an imitation of the labellers and can be gamed. **Best-of-n** is the "
        "simplest use of a reward model; **DPO** skips it and trains on the pairs directly."
    )
    st.latex(r"\mathcal{L}_{BT} = -\log \sigma\big(r(x, y_{chosen}) - r(x, y_{rejected})\big)")

problem = ft.template_problem(lm.tokenizer)
if problem:
    st.warning(f"{model_id}: {problem} Pick the embedded SmolLM2 in the sidebar.")
    st.stop()

st.subheader("1 · Preference pairs (label them yourself)")
flipped = view.labelling_cards(data)
st.caption(
    f"{data.n_train} pairs train the reward model; the last {data.held_out} are held out "
    f"to test it (their labels stay as shipped). You prefer B in {len(flipped)} pair(s); the "
    "reward model below retrains on your labels at once."
)
with st.expander("All pairs in a table"):
    st.dataframe(view.pairs_frame(data, flipped), hide_index=True, width="stretch")

st.subheader("2 · A Bradley-Terry reward model")
features = view.features_job(model_id)
if features is None:
    st.info(
        "The reward head reads the LM's last hidden state at each answer's end-of-turn "
        "token. Press the button to read every answer once; the head then trains instantly."
    )
    check_yourself()  # the questions before the page waits for its job
    st.stop()
model = view.cached_reward_model(model_id, flipped)
m1, m2, m3 = st.columns(3)
m1.metric(
    "Training loss",
    f"{model.losses[-1]:.3f}",
    f"{model.losses[-1] - model.losses[0]:+.3f}",
    delta_color="inverse",
    help=f"It starts at ln 2 = {math.log(2):.3f} (all rewards 0).",
)
m2.metric("Training pairs ranked right", f"{model.train_accuracy:.0%}")
m3.metric("Held-out pairs ranked right", f"{model.held_out_accuracy[-1]:.0%}")
draw_chart(view.training_chart(model))

view.learned_section(features, model, data, flipped)

mine = st.text_area(
    f"Score your own answer to the first held-out prompt: '{data.pairs[data.n_train].prompt}'",
    "",
    key="rlhf.mine",
    max_chars=rlhf.ANSWER_CHARS,
    height=80,
)
if mine.strip():
    got = view.cached_score_features(model_id, data.pairs[data.n_train].prompt, mine)
    st.metric("Reward of your answer", f"{float(model.score(got.features)[0]):+.2f}")

st.subheader("3 · Best-of-n, its KL, and the KL penalty")
held = [p.prompt for p in data.pairs[data.n_train :]]
c1, c2 = st.columns([3, 1])
prompt = c1.selectbox("Prompt", held, key="rlhf.prompt")
n = c2.slider("n", 1, view.N_MAX, 4, key="rlhf.n", bind="query-params")
draw_chart(view.kl_chart(view.kl_frame(n)))
st.caption(
    f"KL(best-of-{n} || policy) = log {n} - {n - 1}/{n} = "
    f"{rlhf.best_of_n_kl_bound(n):.3f} nats when no two answers tie; the exact value for "
    "a policy with only 20 possible answers stays just below it."
)
drawn = view.samples_job(model_id, prompt, n, seed=0)
if drawn is not None:
    view.best_of_n_section(drawn, model, n)

st.subheader("4 · DPO on the same pairs")
dpo_beta = st.slider("DPO beta", 0.05, 1.0, 0.1, 0.05, key="rlhf.dpo_beta")
t_now = st.select_slider("Policy temperature T", list(rlhf.TEMPERATURES), 1.0, key="rlhf.t")
dpo = view.dpo_frame(features, data, flipped, dpo_beta)
here = float(dpo.loc[dpo["policy temperature"] == t_now, "mean DPO loss"].iloc[0])
gap = here - math.log(2)
st.metric(
    "Mean DPO loss at this policy",
    f"{here:.4f}",
    None if abs(gap) < 5e-5 else f"{gap:+.4f} vs ln 2",
    delta_color="inverse",
)
draw_chart(view.dpo_chart(dpo, t_now))
agree = view.reference_agreement(features, data, flipped)
st.caption(
    "DPO's loss per pair is -log sigmoid(beta x [(log pi - log ref) of the preferred answer "
    "minus the same for the other]). The reference is the LM itself; the policy here is "
    "the same LM sampled at temperature T, its log-probabilities read from one forward "
    "pass per answer. At T = 1 the policy is the reference and every pair's loss is "
    f"exactly ln 2. The LM on its own finds the preferred answer more likely in "
    f"{agree:.0%} of the training pairs"
    + (": likelihood is not preference." if agree < 0.75 else ".")
)

show_code(rlhf.bradley_terry_loss, rlhf.train_reward_model, rlhf.kl_penalised, rlhf.dpo_losses)

check_yourself()
