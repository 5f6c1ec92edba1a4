"""Embeddings (concept 07): word maps, neighbours, analogies, similarity matrices, words in
context; cached wrappers around core.embeddings."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import matrix_frame
from components.models import get_encoder, load_model
from components.tokens import visible
from core import embeddings as core_emb


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_embedding_tables(model_id: str) -> tuple[np.ndarray, np.ndarray]:
    table = core_emb.embedding_matrix(load_model(model_id).model)  # a view of the weights
    return table, np.linalg.norm(table, axis=1)  # (vocab,) row lengths, not a second table


@st.cache_data(max_entries=32, show_spinner=False)
def cached_word_points(model_id: str, groups_text: str) -> pd.DataFrame:
    """One row per word: group, word, its tokens, and its PCA coordinates."""
    table, _ = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    rows = []
    for group, words in core_emb.parse_groups(groups_text):
        for w in words:
            ids = core_emb.word_ids(tok, w)
            if ids:
                rows.append({"group": group, "word": w, "tokens": len(ids), "ids": ids})
    df = pd.DataFrame(rows)
    if len(df) >= 2:
        vecs = np.stack([core_emb.word_vector(table, ids) for ids in df["ids"]])
        proj = core_emb.pca_2d(vecs)
        df["x"], df["y"] = proj.xy[:, 0], proj.xy[:, 1]
        df.attrs["explained"] = proj.explained
    return df.drop(columns=["ids"]) if len(df) else df


_UMAP_DONE: set[tuple[str, str]] = set()  # inputs whose UMAP sits in the cache below


def umap_ready(model_id: str, groups_text: str) -> bool:
    return (model_id, groups_text) in _UMAP_DONE


@st.cache_data(max_entries=32, show_spinner=False)
def cached_umap(model_id: str, groups_text: str) -> np.ndarray:
    table, _ = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    vecs = np.stack([core_emb.word_vector(table, core_emb.word_ids(tok, w))
                     for _, words in core_emb.parse_groups(groups_text) for w in words
                     if core_emb.word_ids(tok, w)])
    xy = core_emb.umap_2d(vecs).xy
    _UMAP_DONE.add((model_id, groups_text))
    return xy


@st.cache_data(max_entries=64, show_spinner=False)
def cached_neighbours(model_id: str, word: str, k: int) -> pd.DataFrame:
    table, norms = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    ids = core_emb.word_ids(tok, word)
    found = core_emb.nearest_neighbours(table, core_emb.word_vector(table, ids), k, exclude=ids,
                                        norms=norms)
    return pd.DataFrame({"token": [visible(tok.decode([n.token_id])) for n in found],
                         "id": [n.token_id for n in found], "cosine": [n.cosine for n in found]})


@st.cache_data(max_entries=64, show_spinner=False)
def cached_analogy(model_id: str, a: str, b: str, c: str, k: int) -> pd.DataFrame:
    table, norms = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    ia, ib, ic = (core_emb.word_ids(tok, w) for w in (a, b, c))
    vec = core_emb.analogy_vector(table, ia, ib, ic)
    found = core_emb.nearest_neighbours(table, vec, k, exclude=tuple({*ia, *ib, *ic}), norms=norms)
    return pd.DataFrame({"rank": range(1, len(found) + 1),
                         "token": [visible(tok.decode([n.token_id])) for n in found],
                         "cosine": [n.cosine for n in found]})


@st.cache_data(max_entries=32, show_spinner="Embedding the sentences with MiniLM…")
def cached_sentence_embeddings(sentences: tuple[str, ...]) -> np.ndarray:
    return core_emb.sentence_embeddings(get_encoder(), list(sentences))


@st.cache_data(max_entries=16, show_spinner="Running the model over each sentence…")
def cached_word_in_context(model_id: str, word: str, sentences: tuple[str, ...]
                           ) -> core_emb.WordInContext:
    return core_emb.word_in_context(load_model(model_id), word, list(sentences))


def embedding_map_chart(df: pd.DataFrame, title: str) -> alt.LayerChart:
    base = alt.Chart(df, title=title).encode(
        x=alt.X("x:Q", axis=alt.Axis(labels=False, ticks=False), title=None,
                scale=alt.Scale(zero=False, nice=False)),
        y=alt.Y("y:Q", axis=alt.Axis(labels=False, ticks=False), title=None,
                scale=alt.Scale(zero=False, nice=False)),
        color=alt.Color("group:N", title="group"),
        tooltip=["group", "word", "tokens"],
    )
    return (base.mark_circle(size=70) + base.mark_text(dx=7, align="left", fontSize=11).encode(
        text="word:N")).properties(height=380)


def cosine_matrix_chart(sim: np.ndarray, labels: list[str], title: str,
                     domain: tuple[float, float] = (-0.2, 1.0)) -> alt.LayerChart:
    df = matrix_frame(sim, title, labels, labels)
    base = alt.Chart(df, title=title).encode(
        x=alt.X("col:N", sort=labels, title=None, axis=alt.Axis(labelLimit=140)),
        y=alt.Y("row:N", sort=labels, title=None, axis=alt.Axis(labelLimit=140)))
    heat = base.mark_rect().encode(
        color=alt.Color("value:Q", scale=alt.Scale(scheme="blues", domain=list(domain)),
                        title="cosine"),
        tooltip=["row", "col", alt.Tooltip("value:Q", format=".3f")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition("datum.value > 0.6", alt.value("white"), alt.value("black")))
    return (heat + text).properties(width=min(520, 50 * len(labels) + 80),
                                    height=min(520, 40 * len(labels) + 40))


def word_in_context_chart(df: pd.DataFrame, layer: int) -> alt.LayerChart:
    line = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("layer:O", title="hidden state (0 = input to the first block)"),
        y=alt.Y("mean cosine:Q", scale=alt.Scale(domain=[0, 1]),
                title="mean cosine between the word's vectors"),
        tooltip=["layer", alt.Tooltip("mean cosine:Q", format=".3f")])
    rule = alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(color="#e6550d").encode(
        x="layer:O")
    return (line + rule).properties(height=220)
