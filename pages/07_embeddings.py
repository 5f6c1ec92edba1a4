from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components import embeddings as ce
from components.charts import bar_chart, draw_chart
from components.frame import page_frame, plain_markdown, show_code
from components.preamble import model_page
from components.questions import check_yourself
from core.embeddings import (
    DEFAULT_GROUPS,
    MAX_GROUPS,
    MAX_SENTENCES,
    MAX_WORD_CHARS,
    MAX_WORDS_PER_GROUP,
    agreement_by_layer,
    analogy_vector,
    cosine_matrix,
    nearest_neighbours,
    pca_2d,
    sentence_embeddings,
    text_lines,
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


def clean_word(key: str, default: str) -> str:
    word = st.session_state.get(key, "").strip()[:MAX_WORD_CHARS]
    if not word:
        st.info(f"Empty word: using '{default}'.")
        return default
    return word


st.subheader("Word groups in two dimensions")
groups_text = st.text_area(
    f"Groups, one per line as 'name: word, word, …' (at most {MAX_GROUPS} groups of "
    f"{MAX_WORDS_PER_GROUP} words)",
    DEFAULT_GROUPS,
    key="embeddings.groups",
    height=130,
)
points = ce.cached_word_points(lm.model_id, groups_text)
if len(points) < 3:
    st.warning("Give at least three words (e.g. 'animals: cat, dog, cow'); showing the defaults.")
    groups_text = DEFAULT_GROUPS
    points = ce.cached_word_points(lm.model_id, groups_text)
kept = points.attrs["kept"]
left, right = st.columns(2)
with left:
    ev = points.attrs.get("explained", (0.0, 0.0))
    shown, hidden = ce.labelled_points(points)
    draw_chart(
        ce.embedding_map_chart(
            shown,
            [
                f"PCA: {ev[0]:.0%} + {ev[1]:.0%} of the variance",
                f"{kept['pca']:.0%} of neighbours kept",
            ],
        )
    )
with right:
    tsne_shown, tsne_hidden = ce.labelled_points(
        points.assign(x=points["tsne_x"], y=points["tsne_y"])
    )
    draw_chart(
        ce.embedding_map_chart(tsne_shown, ["t-SNE", f"{kept['tsne']:.0%} of neighbours kept"])
    )
    hidden = max(hidden, tsne_hidden)
better = {1: "more", 0: "as many", -1: "fewer"}[int(np.sign(kept["tsne"] - kept["pca"]))]
st.caption(
    f"PCA keeps the two directions along which the vectors vary most; t-SNE (perplexity "
    f"{kept['perplexity']:.0f}, cosine distances, no random start) moves the points until "
    f"each one's nearest words stay near it. Of each word's {kept['k']} nearest words in the "
    f"full {table.shape[1]} dimensions, the PCA map keeps {kept['pca']:.0%} among its "
    f"{kept['k']} nearest on the map and the t-SNE map {kept['tsne']:.0%}: t-SNE keeps "
    f"{better} of the neighbourhoods. Distances between the clusters of a t-SNE map mean "
    "little."
)
if hidden:
    st.caption(
        f"Words are printed only where they overlap no other word: up to {hidden} of "
        f"{len(points)} are hidden on a map (hover a point for its word, the colour "
        "gives its group)."
    )

st.subheader("Nearest neighbours and analogies")
c1, c2 = st.columns(2)
with c1:
    st.text_input(
        "Word", "king", key="embeddings.word", bind="query-params", max_chars=MAX_WORD_CHARS
    )
    k = st.slider("How many neighbours", 3, 30, 10, key="embeddings.k", bind="query-params")
    word = clean_word("embeddings.word", "king")
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
        clean_word(f"embeddings.{x}", d)
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
default_sentences = (
    "The cat sat on the mat.\nA kitten was resting on the rug.\n"
    "Stock prices fell sharply today.\nThe market dropped this morning.\n"
    "I love pizza."
)
raw = st.text_area(
    f"Sentences, one per line (at most {MAX_SENTENCES})",
    default_sentences,
    key="embeddings.sentences",
    height=130,
)
sentences = text_lines(raw)
if len(sentences) < 2:
    st.info("Give at least two sentences; showing the examples.")
    sentences = tuple(default_sentences.splitlines())
vecs = ce.cached_sentence_embeddings(sentences)
labels = [f"{i + 1}. {s[:28]}" for i, s in enumerate(sentences)]
s1, s2 = st.columns([3, 2])
with s1:
    draw_chart(ce.cosine_matrix_chart(cosine_matrix(vecs), labels, "cosine similarity"))
xy = pca_2d(vecs).xy
with s2:
    sentence_points, n_hidden = ce.labelled_points(
        pd.DataFrame(
            {
                "x": xy[:, 0],
                "y": xy[:, 1],
                "word": [str(i + 1) for i in range(len(sentences))],
                "group": labels,
                "tokens": [len(s.split()) for s in sentences],
            }
        )
    )
    draw_chart(
        ce.embedding_map_chart(sentence_points, "map (PCA)", legend_columns=1),
    )
    if n_hidden:
        st.caption(
            f"{n_hidden} of {len(sentences)} numbers hidden where they would overlap; "
            "hover the points."
        )

st.subheader("One word, several sentences: static vs contextual")
w1, w2 = st.columns([1, 3])
w1.text_input("Word", "bank", key="embeddings.ctx_word", max_chars=MAX_WORD_CHARS)
ctx_word = clean_word("embeddings.ctx_word", "bank")
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
show_code(nearest_neighbours, analogy_vector, pca_2d, tsne_2d, sentence_embeddings, word_in_context)

check_yourself()
