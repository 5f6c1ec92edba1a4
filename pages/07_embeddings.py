"""07 Embeddings: the LM's token vectors in two dimensions, neighbours, analogies, sentence and contextual embeddings."""

from __future__ import annotations

import streamlit as st

from components import embeddings as ce
from components.charts import bar_chart, draw_chart
from components.frame import page_frame, plain_markdown, show_code
from components.preamble import model_page
from components.questions import check_yourself
from core.embeddings import (
    MAX_WORD_CHARS,
    analogy_vector,
    nearest_neighbours,
    pca_2d,
    sentence_embeddings,
    tsne_2d,
    word_ids,
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
    "sentence encoder (MiniLM) turns whole sentences into one vector each."
)

lm, _ = model_page(prompt=False)
table, _ = ce.cached_embedding_tables(lm.model_id)
st.caption(
    f"{plain_markdown(lm.model_id)}: embedding table of {table.shape[0]:,} tokens x "
    f"{table.shape[1]} "
    "dimensions. A word that splits into several tokens is the mean of their rows."
)


st.subheader("Word groups in two dimensions")
ce.word_groups_section(lm, table)

st.subheader("Nearest neighbours and analogies")
c1, c2 = st.columns(2)
with c1:
    st.text_input(
        "Word", "king", key="embeddings.word", bind="query-params", max_chars=MAX_WORD_CHARS
    )
    k = st.slider("How many neighbours", 3, 30, 10, key="embeddings.k", bind="query-params")
    word = ce.clean_word("embeddings.word", "king")
    n_tok = len(word_ids(lm.tokenizer, word))
    nb = ce.cached_neighbours(lm.model_id, word, k)
    draw_chart(
        bar_chart(
            nb,
            "token",
            "cosine",
            f"Closest of all {table.shape[0]:,} "
            f"tokens to '{word}' ({n_tok} token{'s' * (n_tok > 1)})",
        ),
        width="stretch",
    )
with c2:
    a1, a2, a3 = st.columns(3)
    a1.text_input("A", "man", key="embeddings.a", max_chars=MAX_WORD_CHARS)
    a2.text_input("is to B", "king", key="embeddings.b", max_chars=MAX_WORD_CHARS)
    a3.text_input("as C is to ?", "woman", key="embeddings.c", max_chars=MAX_WORD_CHARS)
    a, b, c = (
        ce.clean_word(f"embeddings.{x}", d)
        for x, d in zip("abc", ("man", "king", "woman"), strict=True)
    )
    ranked = ce.cached_analogy(lm.model_id, a, b, c, 10)
    draw_chart(
        bar_chart(ranked, "token", "cosine", "B − A + C, closest tokens (inputs left out)"),
        width="stretch",
    )
    st.caption(
        "In a small model's input table, analogies often land on a near-synonym of B; "
        "the ranking shows how close the intended answer came."
    )

st.subheader("Sentence embeddings (MiniLM)")
ce.sentence_section()

st.subheader("One word, several sentences: static vs contextual")
ce.contextual_section(lm)
show_code(nearest_neighbours, analogy_vector, pca_2d, tsne_2d, sentence_embeddings, word_in_context)

check_yourself()
