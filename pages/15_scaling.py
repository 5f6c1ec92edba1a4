"""15 Compute & Scale: scaling laws, training time, cost and memory, and a mini scaling law trained here."""

from __future__ import annotations

import streamlit as st

from components import pretraining_loop as cp
from components import scaling as cs
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.jobs import run_job
from components.models import get_lm_or_none
from components.questions import check_yourself
from core import scaling as sc
from core.runtime.model_ids import EMBEDDED_ID
from core.shared.published import count_parameters

page_frame()
(a1_lo, a1_hi), (a2_lo, a2_hi) = map(
    cs.tokens_per_param, (sc.TABLE_3_APPROACH_1, sc.TABLE_A3_APPROACH_2)
)
with intro():
    st.markdown(
        "Training compute is about **C = 6ND** FLOPs: N parameters, D tokens, 2 FLOPs per "
        "parameter per token forward and 4 backward. For a fixed budget C you can train a big "
        "model on few tokens or a small one on many. Chinchilla (Hoffmann et al. 2022) trained "
        "over 400 models and found that N and D should grow about equally: its first two methods "
        f"give **{a1_lo:.0f} to {a1_hi:.0f}** (Approach 1) and **{a2_lo:.0f} to {a2_hi:.0f} tokens "
        "per parameter** (Approach 2, more for bigger budgets), rounded to the rule of thumb of 20; "
        "its fitted loss L(N, D) = E + A/N^α + B/D^β (Approach 3) leans further towards data. Move "
        "the budget to see both recipes, the loss the fit predicts, and where famous models sit."
    )
with st.expander("Go deeper: the closed form, and why unrounded exponents matter"):
    f = sc.CHINCHILLA
    st.markdown(
        f"Minimising L subject to 6ND = C gives N_opt = G·(C/6)^a and D_opt = (C/6)^b / G with "
        f"a = β/(α+β) = {f.a:.4f}, b = α/(α+β) = {f.b:.4f}, G = (αA/βB)^(1/(α+β)) = {f.G:.3f}. "
        f"This page uses the fit's unrounded values (E = {f.E}, A = {f.A}, B = {f.B}, "
        f"α = {f.alpha}, β = {f.beta}; the paper prints 1.69, 0.34, 0.28). Because the "
        "exponents multiply logarithms of about 25, the printed ones give optimal sizes tens of "
        "percent smaller than the paper's own Table A3."
    )

lm = get_lm_or_none()  # only for SmolLM2's own size: the page works without a model
smol = count_parameters(lm.model) if lm and lm.model_id == EMBEDDED_ID else None
known = sc.known_models(smol)  # SmolLM2's size counted on the loaded model itself
left, right = st.columns([2, 3], gap="large")
with left:
    log_c = st.slider(
        "Compute budget C (log₁₀ FLOPs)",
        cs.BUDGET_MIN,
        cs.BUDGET_MAX,
        23.8,
        0.1,
        key="scaling.log_c",
        bind="query-params",
        help="10^23.8 ≈ 6e23 FLOPs: Chinchilla's budget.",
    )
    budget = 10**log_c
    for label, method in cs.METHODS.items():
        n, d = cs.optimum(method, budget)
        m1, m2 = st.columns(2)
        m1.metric(
            f"N, {cs.SHORT[method]}",
            cp.fmt_params(n),
            help=f"{label}: C = 6ND = {budget:.2e} FLOPs",
        )
        m2.metric("D (tokens)", cp.fmt_params(d), help=f"{d / n:.0f} tokens per parameter")
    n_fit, d_fit = sc.CHINCHILLA.optimal(budget)
    st.caption(
        f"Predicted loss at C = {budget:.2e}: **{sc.CHINCHILLA.loss(n_fit, d_fit):.3f}** "
        f"nats per token with the fit's split, "
        f"{sc.CHINCHILLA.loss(*sc.twenty_tokens_rule(budget)):.3f} with 20 tokens per "
        f"parameter. The fit's split is {d_fit / n_fit:.0f} tokens per parameter here; "
        f"its floor E = {sc.CHINCHILLA.E} is the loss no size removes."
    )
with right:
    draw_chart(cs.isoflop_chart(cs.isoflop_frame(budget)))
    st.caption(
        "IsoFLOP curves: each line spends one budget; too small a model underfits, too "
        "big a one sees too few tokens. Red dots are the minima; your budget is thick."
    )
c1, c2 = st.columns([3, 2], gap="large")
with c1:
    draw_chart(cs.frontier_chart(cs.frontier_frame(known)))
with c2:
    gap_n, gap_d = cs.fit_against_table_a3()
    st.markdown(
        "**Who trained how.** The lines are the compute-optimal N and D for budgets 1e18 to "
        "1e28 by each recipe; the circles are the paper's own projections (Table 3 for Approach 1, "
        "Table A3 for Approach 3), and the diamonds are "
        "trained models, each at its own C = 6ND. Models above the lines saw more tokens than "
        "compute-optimal: deliberately, since a smaller model trained longer is cheaper to run. "
        f"The fit's line does not pass exactly through Table A3's circles: at the table's "
        f"budgets its N is {gap_n[0]:.0%} to {gap_n[1]:.0%} off the table's and its D "
        f"{gap_d[0]:.0%} to {gap_d[1]:.0%} (the paper computed its table with its own "
        "unrounded constants, which it does not print)."
    )
cs.known_models_table(known)

st.subheader("How long, and what it costs")
c1, c2, c3, c4 = st.columns(4)
gpu = c1.selectbox("GPU", list(sc.GPU_PEAK_FLOPS), key="scaling.gpu")
gpus = c2.number_input("GPUs", 1, 100_000, 1024, key="scaling.gpus")
mfu = c3.slider(
    "Utilisation (MFU)",
    0.1,
    0.7,
    0.4,
    0.05,
    key="scaling.mfu",
    help="Model FLOPs utilisation: the share of peak FLOPs the run really achieves.",
)
price = c4.number_input("$ per GPU-hour", 0.0, 50.0, 2.0, 0.5, key="scaling.price")
t = sc.training_time(budget, int(gpus), sc.GPU_PEAK_FLOPS[gpu], mfu, price)
st.markdown(
    f"{budget:.2e} FLOPs on {gpus:,} × {gpu} at {mfu:.0%} MFU: "
    f"**{cs.duration_text(t.seconds)}**, {t.gpu_hours:,.1f} GPU-hours, about **${t.cost:,.{0 if t.cost >= 100 else 2}f}**."
)

st.subheader("Training memory")
cp.memory_calculator("scaling")

st.subheader("A mini scaling law, trained here")
st.markdown(
    "Five tiny GPTs of growing size train on the same documentation, one character per token, "
    "each for the same number of steps. Plotted against the compute each has spent, the lowest "
    "curve at every budget traces a power law L ≈ k·C^−g: bigger models win once they have "
    "enough compute, the same trade-off the isoFLOP curves show at full scale."
)
steps = st.select_slider("Steps per model", [100, 200, 400, 600], 200, key="scaling.sweep_steps")
corpus = cp.cached_corpus("char", "")
result = run_job(
    ("scaling", "sweep", steps),
    cs.sweep_work(steps),
    start_label="Train the five models",
    estimate_s=cs.sweep_estimate_s(corpus.vocab_size, steps, sc.SWEEP_SIZES),
    caps=f"5 models × {steps} steps (batch {sc.SWEEP_BATCH}, context "
    f"{sc.SWEEP_CONTEXT}); one CPU thread.",
)
if result is not None:
    draw_chart(cs.sweep_chart(cs.sweep_frame(result)))
    st.markdown(
        f"Fitted frontier: L ≈ {result.law.coefficient:.2f} · C^−{result.law.exponent:.3f}"
        f" over {len(result.frontier)} frontier points."
    )
show_code(sc.CHINCHILLA.optimal, sc.twenty_tokens_rule, sc.scaling_sweep)

check_yourself()
