"""02 Layers & Deep Networks: TensorFlow Playground's MLP trained live, then the LM's layers."""

import math

import streamlit as st

from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.layers import cached_layer_similarity, layer_similarity_chart
from components.models import get_trace
from components.playground import playground
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from core import layers as pgc
from core import neuron as neurons

page_frame()
with intro():
    st.markdown(
        "A small network learns to separate the blue points from the orange ones: each small "
        "square is one hidden neuron over the plane, the big square the network's answer. Try XOR "
        "with no hidden layer, then with one layer of four tanh neurons."
    )

pg = playground("layers")
with st.expander("What the layers do, and what to try"):
    st.markdown(
        "A layer is a row of neurons that all read the previous layer's outputs. One neuron can "
        "only draw a straight line through the plane; a hidden layer combines several such "
        "lines into bends and patches, and a further layer combines *those* into more abstract "
        "shapes. XOR with no hidden layer: no straight line separates it, so the loss stays near "
        f"ln 2 ≈ {math.log(2):.2f}, the loss of answering 50 % for every point. The accuracy can "
        "still land above 50 %, because even an almost flat output puts its line somewhere, and "
        "a line can get at most three of the four quadrants right (75 %). One layer of four tanh "
        "neurons solves it. Try the spiral with more layers or with the sin features.\n\n"
        "The output is a sigmoid of the last layer, trained with binary cross-entropy and "
        "plain SGD on mini-batches (the gradient averaged over each batch). TensorFlow "
        "Playground runs the same mini-batch loop but with a tanh output on labels -1 and +1 "
        "and squared error; sigmoid with cross-entropy is the usual choice for classification "
        "and draws the same kind of boundaries. Input features "
        "such as x² or sin x are hand-made features: with them even a network without hidden "
        "layers can draw a circle. Deep networks learn such features themselves. "
        "The controls are stored in the page's address: copy the URL to share this network."
    )

st.subheader("Inside the real model: how alike are its layers?")
st.markdown(
    "A language model stacks the same kind of block many times. Each block adds a little to "
    "every token's vector, so neighbouring layers hold similar representations while distant "
    "ones differ. The heatmap compares every layer's hidden states with every other's, on the "
    "shared prompt. Layer 0 is the token embeddings; the last layer is the output of the last "
    "block *after the final norm*, the vector the output head reads, which is why it can look "
    "unlike the block just before it."
)
method = st.radio(
    "Similarity",
    ["cka", "cosine"],
    horizontal=True,
    key="layers.similarity",
    format_func=lambda m: {
        "cka": "linear CKA (geometry of all tokens)",
        "cosine": "mean cosine of each token's vectors",
    }[m],
)
lm, text = model_page()
trace = get_trace(text)
note_truncation(trace.truncated_from, trace.length)
if trace.length < 3 and method == "cka":
    st.info("CKA compares token clouds and needs at least three tokens; showing cosine.")
    method = "cosine"
matrix, n_tokens = cached_layer_similarity(lm.model_id, text, method)
draw_chart(
    layer_similarity_chart(matrix, f"{matrix.shape[0] - 1} blocks, {n_tokens} tokens"),
    key="layers.similarity_chart",
    width="stretch",
)
adjacent = [float(matrix[i, i + 1]) for i in range(matrix.shape[0] - 1)]
st.caption(
    f"Mean similarity of neighbouring layers: {sum(adjacent) / len(adjacent):.3f}; "
    f"embeddings vs last layer (after the final norm): {matrix[0, -1]:.3f}. The first "
    "token is left out: models "
    "park very large activations on it (an 'attention sink') that would swamp the "
    "comparison."
)

show_code(pgc.Playground.train_epochs, pgc.Playground.step, pgc.build_mlp, neurons.layer_similarity)

check_yourself()
