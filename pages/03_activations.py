"""03 Activation Functions: the curves and their slopes, a race between them, and the LM's own."""

import streamlit as st

from components.activations import (
    COMPARISON,
    COMPARISON_EPOCHS,
    activation_curves_chart,
    comparison_job,
    histogram_chart,
)
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.neuron import cached_mlp_capture
from components.preamble import model_page, require_anatomy
from components.questions import check_yourself
from core import activations
from core import neuron as neurons

page_frame()
with intro():
    st.markdown(
        "Without an activation function, a stack of layers collapses into a single linear map: "
        "lines on lines are still a line. The activation bends each neuron's output, and that is "
        "what lets a network draw curves. Training needs its *slope* too: backpropagation "
        "multiplies the derivatives of every layer, so where a sigmoid or tanh flattens out "
        "(slope near 0) the gradient vanishes, while ReLU passes a slope of exactly 1 for every "
        "positive input. Modern LLMs use smooth cousins of ReLU: GELU (GPT-2) and SiLU "
        "(Llama, SmolLM2)."
    )

q = "query-params"
chosen = st.multiselect(
    "Activations",
    activations.NAMES,
    default=["relu", "gelu", "silu", "sigmoid", "tanh"],
    format_func=activations.LABELS.get,
    key="activations.chosen",
    bind=q,
)
lo, hi = st.slider("Input range", -10.0, 10.0, (-4.0, 4.0), 0.5, key="activations.range", bind=q)
if hi - lo < 0.5:
    st.info("The range is very narrow; widening it to one unit around its centre.")
    lo, hi = (lo + hi) / 2 - 0.5, (lo + hi) / 2 + 0.5
if not chosen:
    st.info("Pick at least one activation to draw.")
curves = activations.curves(tuple(chosen), lo, hi)
left, right = st.columns(2)
draw_chart(activation_curves_chart(curves, False), key="activations.values", where=left)
draw_chart(activation_curves_chart(curves, True), key="activations.derivatives", where=right)
st.caption("Derivatives are the hand-derived formulas (the tests check them against autograd).")

st.subheader("The same network, trained with each activation")
st.markdown(
    f"A {len(COMPARISON.hidden)}-hidden-layer network ({' → '.join(map(str, COMPARISON.hidden))} "
    f"neurons) learns the spiral for {COMPARISON_EPOCHS} epochs with each activation in turn, "
    f"with the same data, seed, learning rate ({COMPARISON.learning_rate}) and batch size "
    f"({COMPARISON.batch_size}). Results are shared, so a second visit is instant."
)
table = comparison_job()
if table is not None:
    st.dataframe(
        table.style.format(
            {
                "train loss": "{:.3f}",
                "test loss": "{:.3f}",
                "test accuracy": "{:.1%}",
                "seconds": "{:.1f}",
            }
        ),
        hide_index=True,
        key="activations.table",
    )

st.subheader("What the real model's neurons receive")
lm, text = model_page()
anatomy = require_anatomy(lm, "mlp")
mlp = anatomy.mlp(0)
kind, act_name = mlp.kind, type(mlp.act).__name__
layer = st.slider(
    "Layer", 0, anatomy.n_layers - 1, anatomy.n_layers // 2, key="activations.layer", bind=q
)
tokens, cap, _, total = cached_mlp_capture(lm.model_id, text, layer)
h = neurons.histogram(cap.preact)
what = "gate projection" if kind == "gated" else "first MLP projection"
draw_chart(
    histogram_chart(
        h,
        f"layer {layer}: {h.total:,} values ({len(tokens)} tokens × "
        f"{cap.preact.shape[1]:,} neurons)",
    ),
    key="activations.hist",
)
st.caption(
    f"Inputs to the activation ({act_name}) after the {what}, over the shared prompt's "
    f"tokens{' (first ' + str(len(tokens)) + ')' if total > len(tokens) else ''}. "
    f"{h.fraction_negative:.1%} are negative, which the activation squashes towards "
    f"zero; mean {h.mean:.2f}, standard deviation {h.std:.2f}. The outer 0.1 % on each "
    "side are gathered in the end bins."
)

show_code(activations.curves, activations.ActivationModule, neurons.capture_mlp, neurons.histogram)

check_yourself()
