"""01 The Neuron: one weighted sum and a non-linearity, then a real neuron of the LM's MLP."""

import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.neuron import cached_mlp_capture, neuron_plane_chart
from components.preamble import model_page, note_truncation, require_anatomy
from components.questions import check_yourself
from components.tokens import token_strip, visible
from core import activations
from core import neuron as neurons

page_frame()
with intro():
    st.markdown(
        "A neuron multiplies each input by a weight, adds them up with a bias, and passes the sum "
        "through a non-linear *activation*: $a = f(w_1x_1 + w_2x_2 + b)$. The weights set the "
        "direction it is sensitive to, the bias shifts where it switches on. Where the weighted "
        "sum is zero lies a straight line: a single neuron can only split the plane in two. "
        "Move the sliders and watch the line turn and slide, and the output change."
    )

q = "query-params"
c1, c2 = st.columns([1, 2])
with c1:
    w1 = st.slider("w₁", -3.0, 3.0, 1.0, 0.1, key="neuron.w1", bind=q)
    w2 = st.slider("w₂", -3.0, 3.0, -0.5, 0.1, key="neuron.w2", bind=q)
    b = st.slider("b (bias)", -3.0, 3.0, 0.5, 0.1, key="neuron.b", bind=q)
    act = st.selectbox(
        "Activation",
        activations.NAMES,
        index=activations.NAMES.index("sigmoid"),
        format_func=activations.LABELS.get,
        key="neuron.activation",
        bind=q,
    )
    x1 = st.slider("Input x₁", -3.0, 3.0, 1.0, 0.1, key="neuron.x1")
    x2 = st.slider("Input x₂", -3.0, 3.0, 2.0, 0.1, key="neuron.x2")
z, a = activations.neuron(x1, x2, w1, w2, b, act)
with c2:
    st.latex(
        rf"z = w_1x_1 + w_2x_2 + b = ({w1:g})({x1:g}) + ({w2:g})({x2:g}) + ({b:g}) "
        rf"= {z:.3f}"
    )
    st.latex(rf"f(x) = {activations.ACTIVATIONS[act].formula} \qquad a = f({z:.3f}) = {a:.4f}")
    draw_chart(
        neuron_plane_chart(activations.neuron_plane(w1, w2, b, act), (x1, x2)), key="neuron.plane"
    )
    st.caption(
        "Colour: the neuron's output at every input (x₁, x₂); black line: "
        "w₁x₁ + w₂x₂ + b = 0; cross: the input above."
    )

st.subheader("A real neuron inside the language model")
lm, text = model_page()
anatomy = require_anatomy(lm, "mlp")
n_layers, width = anatomy.n_layers, anatomy.mlp_width
st.markdown(
    f"Each of the model's {n_layers} blocks holds an MLP with {width:,} neurons per token, the "
    "same weighted sum and activation, only with hundreds of inputs. Pick one and see which "
    "tokens of the shared prompt make it fire."
)
d1, d2 = st.columns(2)
layer = d1.slider("Layer", 0, n_layers - 1, n_layers // 2, key="neuron.layer", bind=q)
# opens on a neuron with a pattern to see at the opening layer, measured on the sample text
# (not neuron 0); as the widget's own default, so a link leaves it out and "Reset this page"
# comes back to it whatever layer was picked since
open_tokens, open_cap, _, _ = cached_mlp_capture(lm.model_id, neurons.REFERENCE_TEXT, n_layers // 2)
clearest = neurons.clearest_neuron(open_tokens, open_cap.neurons)
index = int(
    d2.number_input(f"Neuron (0-{width - 1})", 0, width - 1, clearest, key="neuron.index", bind=q)
)
ref_tokens, ref_cap, _, _ = cached_mlp_capture(lm.model_id, neurons.REFERENCE_TEXT, layer)
tokens, cap, recomputed, total = cached_mlp_capture(lm.model_id, text, layer)
note_truncation(total, len(tokens), "this section")
values = cap.neurons[:, index]
scale = float(np.abs(values).max()) or 1.0
token_strip(list(tokens), values=list(values / scale), titles=[f"{v:+.3f}" for v in values])
diff = float(np.abs(recomputed - cap.neurons).max())
st.caption(
    f"Orange: fires, blue: negative (SwiGLU and GELU neurons can go below zero); hover a "
    f"token for its value. Recomputed by hand from the layer's input, the activations "
    f"match the model's own to within {diff:.1e}."
)

all_tokens = tokens + ref_tokens
all_values = np.concatenate([values, ref_cap.neurons[:, index]])
top = neurons.top_activating(all_tokens, all_values, k=8)
e1, e2 = st.columns(2)
e1.markdown("**Top-activating tokens** (prompt plus a short built-in sample text)")
e1.dataframe(
    pd.DataFrame(
        {
            "token": [visible(t.token) for t in top],
            "context": [visible(t.context) for t in top],
            "activation": [round(t.activation, 3) for t in top],
        }
    ),
    hide_index=True,
)
strong = neurons.strongest_neurons(cap.neurons)
e2.markdown("**Strongest neurons of this layer on the prompt**")
e2.dataframe(pd.DataFrame(strong, columns=["neuron", "peak activation"]), hide_index=True)
e2.caption("Type one of these indices above to see what it responds to.")

show_code(
    activations.neuron, activations.neuron_plane, neurons.capture_mlp, neurons.recompute_neurons
)

check_yourself()
