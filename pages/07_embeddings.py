"""07 Embeddings: the LM's token vectors on maps (PCA, t-SNE, UMAP), a vocabulary search with
nearest neighbours, analogies, sentence and contextual embeddings."""

from __future__ import annotations

import streamlit as st

from components import embeddings as ce
from components.frame import intro, page_frame, plain_markdown, show_code
from components.preamble import model_page
from components.questions import check_yourself
from core.embeddings import (
    analogy_vector,
    find_tokens,
    nearest_neighbours,
    pca_2d,
    sentence_embeddings,
    tsne_2d,
    umap_layout,
    word_in_context,
)

page_frame()
with intro():
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
ce.contextual_section(lm)
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

check_yourself()
