"""05 Overfitting & Generalization: a model memorising a few noisy points, and what closes the gap."""

import streamlit as st

from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.overfitting import cached_fit, fit_chart, gap_chart
from components.playground import playground
from components.questions import check_yourself
from core import layers as pgc
from core import overfitting as overfit

page_frame()
with intro():
    st.markdown(
        "A network with enough capacity can pass exactly through every training point, noise "
        "included. Its training loss then drops towards zero while its loss on new points from the "
        "same source (the *validation* loss) stays high: it has memorised instead of learned. The "
        "gap between the two curves is the measure of overfitting. More data, less capacity, "
        "weight decay (a penalty on large weights), dropout (randomly silencing neurons while "
        "training) and early stopping (keeping the model from the step with the best validation "
        "loss) all narrow it. Below, the truth is a sine wave; the model sees only the blue points."
    )

q = "query-params"
d = overfit.FitConfig()
c1, c2, c3 = st.columns(3)
n_train = c1.slider("Training points", 4, 100, d.n_train, key="overfitting.n", bind=q)
noise = c1.slider("Noise (std)", 0.0, 1.0, d.noise, 0.05, key="overfitting.noise", bind=q)
width = c2.select_slider(
    "Capacity: neurons per hidden layer (2 layers)",
    (2, 4, 8, 16, 32, 64, 128, 256),
    d.width,
    key="overfitting.width",
    bind=q,
)
decay = c2.select_slider(
    "Weight decay (L2)",
    (0.0, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03),
    d.weight_decay,
    key="overfitting.decay",
    bind=q,
)
dropout = c3.slider("Dropout", 0.0, 0.5, d.dropout, 0.05, key="overfitting.dropout", bind=q)
early = c3.checkbox("Early stopping", d.early_stopping, key="overfitting.early", bind=q)
patience = c3.slider(
    "Patience (steps)", 20, 400, d.patience, 20, key="overfitting.patience", disabled=not early
)
seed = c1.number_input(
    "Sample",
    0,
    999,
    d.seed,
    key="overfitting.seed",
    bind=q,
    help="Draw a different set of noisy points.",
)
config = overfit.FitConfig(
    n_train=n_train,
    noise=noise,
    width=width,
    weight_decay=decay,
    dropout=dropout,
    early_stopping=early,
    patience=patience,
    seed=int(seed),
)
result = cached_fit(config)
left, right = st.columns(2)
draw_chart(fit_chart(result), key="overfitting.fit", where=left)
draw_chart(gap_chart(result), key="overfitting.gap", where=right)
m = st.columns(4)
m[0].metric("Training MSE", f"{result.final_train:.4f}")
m[1].metric("Validation MSE", f"{result.final_val:.4f}")
m[2].metric("Gap", f"{result.gap:.4f}")
m[3].metric(
    "Steps",
    f"{int(result.steps[-1])}",
    help="Where the early-stopping run halted." if early else None,
)
stop = (
    f" Early stopping kept the model of step {int(result.steps[result.stopped_at])}."
    if result.stopped_at is not None
    else ""
)
st.caption(
    f"Full-batch Adam, {config.epochs} steps at most (cap {overfit.EPOCH_CAP}), "
    f"validation on {overfit.N_VALIDATION} fresh points. The noise floor: the true "
    f"curve itself scores {result.noise_floor:.4f} on these points (noise² = "
    f"{noise**2:.4f} is its expectation over all possible points).{stop}"
)

st.subheader("The same on the Playground")
st.markdown(
    "Few training points (10 %), noisy clusters and a network with many neurons: the "
    "test loss turns upwards while the training loss keeps falling. Add L2 or L1 "
    "regularization, or more training data, and train again."
)
playground(
    "overfitting.pg",
    defaults=pgc.PlaygroundConfig(
        dataset="gauss",
        noise=40,
        train_ratio=10,
        hidden=(8, 8),
        features=("x", "y", "x²", "y²", "xy", "sin x", "sin y"),
        learning_rate=0.1,
        batch_size=5,
    ),
    show=frozenset({"data", "network", "regularization"}),
)

show_code(overfit.fit, overfit.FitConfig)

check_yourself()
