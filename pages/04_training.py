"""04 Training & Backpropagation: gradients by autograd on a tiny graph, optimisers on a surface."""

import pandas as pd
import streamlit as st

from components.charts import graph_colours
from components.frame import intro, page_frame, show_code
from components.playground import playground
from components.questions import check_yourself
from components.training import (
    cached_optimizer_path,
    expression_dot,
    surface_section,
)
from core import layers as pgc
from core import training as optim

page_frame()
with intro():
    st.markdown(
        "Training means nudging every weight a little downhill on the loss. *Backpropagation* "
        "finds the slope for every weight at once: it runs the computation forward, then applies "
        "the chain rule backwards from the loss, each node multiplying the gradient it receives by "
        "its own local derivative. The optimiser then takes a step: $w \\leftarrow w - \\eta\\, "
        "\\partial L/\\partial w$, where the learning rate $\\eta$ sets the step size. Too small "
        "and training crawls; too large and every step overshoots further until the loss explodes."
    )

st.subheader("Backpropagation through one neuron")
q = "query-params"
cols = st.columns(6)
names = ("x1", "x2", "w1", "w2", "b", "target")
defaults = (1.0, -2.0, 0.5, 0.8, 0.1, 1.0)
vals = [
    c.slider(n, -3.0, 3.0, d, 0.1, key=f"training.{n}", bind=q)
    for c, n, d in zip(cols, names, defaults, strict=True)
]
nodes = optim.expression_graph(*vals)
st.graphviz_chart(expression_dot(nodes, graph_colours()))
hand = optim.hand_gradients(*vals)
st.caption(
    "Each box: forward value, then the gradient of the loss L = (tanh(x1·w1 + x2·w2 + b) "
    "- target)² with respect to it, computed by torch's autograd."
)
with st.expander("Check: autograd against the chain rule by hand"):
    st.dataframe(
        pd.DataFrame(
            {
                "node": [n.name for n in nodes],
                "autograd": [n.grad for n in nodes],
                "by hand": [hand[n.name] for n in nodes],
            }
        ),
        hide_index=True,
    )

st.subheader("Optimisers on a loss surface")
st.markdown(
    f"A two-parameter model, $\\hat y = wx + b$, fitted to {optim.N_POINTS} noisy points by "
    "mean squared error. Its loss over every (w, b) is the grey landscape (darker is lower); "
    "each optimiser starts at the same point and walks downhill. The valley is long and thin: "
    "steep across, nearly flat along its floor. Plain SGD steps straight down the slope, which "
    "points mostly across the valley: at a small learning rate it slides down the steep wall "
    "and then crawls along the floor; close to its divergence limit it zig-zags from wall to "
    "wall. Momentum adds up its past steps, so it gathers speed along the floor, but it also "
    "overshoots and swings round the minimum before it settles. Adam divides each parameter's "
    "step by the size of its recent gradients, so at first both parameters move about one "
    "learning rate per step, however steep or flat the slope."
)
o1, o2, o3, o4 = st.columns([1.3, 1, 1, 1])
chosen = (
    o1.pills(
        "Optimisers",
        optim.OPTIMIZERS,
        selection_mode="multi",
        default=list(optim.OPTIMIZERS),
        key="training.optimisers",
        bind=q,
    )
    or []
)
lr = o2.select_slider(
    "Learning rate",
    (0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
    0.05,
    key="training.lr",
    bind=q,
)
batch = o3.slider("Batch size", 1, optim.N_POINTS, optim.N_POINTS, key="training.batch", bind=q)
steps = o4.slider("Steps", 10, optim.STEP_CAP, 100, 10, key="training.steps", bind=q)
paths = {name: cached_optimizer_path(name, lr, batch, steps) for name in chosen}
surface_section(paths, steps)
for name, p in paths.items():
    if p.diverged:
        st.warning(
            f"{name} diverged after {len(p.losses) - 1} steps: at learning rate {lr} "
            f"every step overshoots the valley and the loss reached {p.losses[-1]:.3g}."
        )
    else:
        turns = optim.direction_reversals(p.points)
        st.caption(
            f"{name}: loss {p.losses[0]:.3f} → {p.losses[-1]:.4f}; it turned back "
            f"(a step more than 90° from the one before) {turns} times in "
            f"{len(p.losses) - 1} steps."
        )
st.info(
    f"For this data, full-batch SGD diverges above a learning rate of "
    f"{optim.divergence_threshold():.3f} (2 divided by the largest curvature of the loss). "
    "Push the slider past it."
)

st.subheader("The same on the Playground network")
st.markdown(
    "Learning rate and batch size on the network of page 02 (circle data, two hidden "
    "layers of 4 and 2 tanh neurons): a learning rate of 3 or 10 makes the loss jump "
    "around or blow up; a tiny one barely moves it."
)
playground("training.pg", show=frozenset({"training"}))

show_code(optim.expression_graph, optim.hand_gradients, optim.optimizer_path, pgc.Playground.step)

check_yourself()
