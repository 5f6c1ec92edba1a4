from __future__ import annotations

import pandas as pd
import streamlit as st

from components import embeddings as ce
from components.charts import draw_chart
from components.frame import page_frame, plain_markdown, show_code
from components.preamble import model_page
from core.embeddings import (
    MAX_WORD_CHARS,
    agreement_by_layer,
    analogy_vector,
    cosine_matrix,
    find_tokens,
    nearest_neighbours,
    pca_2d,
    sentence_embeddings,
    text_lines,
    tsne_2d,
    umap_layout,
    word_in_context,
)

page_frame()
st.markdown(
    "The first thing a language model does with a token is look up a row in its **embedding "
    "table**: a list of a few hundred numbers learned in training. Tokens used in similar ways "
    "end up with similar vectors, so closeness (the cosine of the angle between two vectors) "
    "stands for similarity of meaning or use, and directions can carry relations "
    "(king − man + woman ≈ queen, sometimes). These rows are *static*: 'bank' gets the same "
    "vector in every sentence; the layers above turn it into a *contextual* vector. A separate "
    "sentence encoder (MiniLM) turns whole sentences into one vector each. To look at hundreds "
    "of dimensions, a map squeezes them into two: PCA keeps the directions of most variance, "
    "t-SNE and UMAP (the map of the Embedding Projector and most papers) keep each point's "
    "nearest neighbours near it."
)

lm, _ = model_page(prompt=False)
table, _ = ce.cached_embedding_tables(lm.model_id)
st.caption(
    f"{plain_markdown(lm.model_id)}: embedding table of {table.shape[0]:,} tokens x "
    f"{table.shape[1]} "
    "dimensions. A word that splits into several tokens is the mean of their rows."
)


ce.word_map_section(lm.model_id, table.shape[1])
ce.neighbours_section(lm.model_id, table.shape[0])
ce.sentence_section()

st.subheader("One word, several sentences: static vs contextual")
w1, w2 = st.columns([1, 3])
w1.text_input("Word", "bank", key="embeddings.ctx_word", max_chars=MAX_WORD_CHARS)
ctx_word = ce.clean_word("embeddings.ctx_word", "bank")
ctx_default = (
    "We sat on the river bank and fished.\nShe deposited cash at the bank.\n"
    "The bank raised its interest rates.\nGrass grew along the muddy bank."
)
ctx_raw = w2.text_area(
    "Sentences containing it", ctx_default, key="embeddings.ctx_sentences", height=110
)
ctx_sentences = text_lines(ctx_raw)
wic = ce.cached_word_in_context(lm.model_id, ctx_word, ctx_sentences)
if wic.missing:
    st.warning(
        f"{len(wic.missing)} sentence(s) do not contain '{plain_markdown(ctx_word)}' as a whole word and "
        "are left out."
    )
if len(wic.sentences) < 2:
    st.info(
        f"Need at least two sentences containing '{plain_markdown(ctx_word)}'; showing the bank example."
    )
    ctx_word, ctx_sentences = "bank", tuple(ctx_default.splitlines())
    wic = ce.cached_word_in_context(lm.model_id, ctx_word, ctx_sentences)
n_states = wic.contextual.shape[1]
layer = st.slider(
    "Layer for the contextual vectors",
    0,
    n_states - 1,
    min(6, n_states - 1),
    key="embeddings.layer",
)
ctx_labels = [f"{i + 1}. {s[:28]}" for i, s in enumerate(wic.sentences)]
k1, k2 = st.columns(2)
with k1:
    draw_chart(
        ce.cosine_matrix_chart(
            cosine_matrix(wic.static), ctx_labels, "static: the embedding-table rows"
        ),
    )
with k2:
    draw_chart(
        ce.cosine_matrix_chart(
            cosine_matrix(wic.contextual[:, layer]), ctx_labels, f"contextual: hidden state {layer}"
        ),
    )
curve = pd.DataFrame({"layer": range(n_states), "mean cosine": agreement_by_layer(wic.contextual)})
draw_chart(ce.word_in_context_chart(curve, layer), width="stretch")
st.caption(
    "Layer 0 is the input to the first block (for GPT-2 it already includes the "
    "position embedding). The last state has the model's final norm applied."
)
show_code(
    nearest_neighbours,
    find_tokens,
    analogy_vector,
    pca_2d,
    tsne_2d,
    umap_layout,
    sentence_embeddings,
    word_in_context,
)
