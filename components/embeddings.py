"""Embeddings (concept 07): word maps, neighbours, analogies, similarity matrices, words in
context; cached wrappers around core.embeddings."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import ink_encoding, ink_for, matrix_frame, place_labels
from components.models import get_encoder, load_model
from components.tokens import visible
from core import embeddings as core_emb


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_embedding_tables(model_id: str) -> tuple[np.ndarray, np.ndarray]:
    table = core_emb.embedding_matrix(load_model(model_id).model)  # a view of the weights
    return table, np.linalg.norm(table, axis=1)  # (vocab,) row lengths, not a second table


NEIGHBOURS_KEPT_K = 5


@st.cache_data(max_entries=32, show_spinner=False)
def cached_word_points(model_id: str, groups_text: str) -> pd.DataFrame:
    """One row per word: group, word, its tokens, its PCA and t-SNE coordinates; in `attrs`, PCA's
    explained variance and how many nearest neighbours each map keeps."""
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
        proj, tsne = core_emb.pca_2d(vecs), core_emb.tsne_2d(vecs)  # t-SNE: 0.1 s at most
        df["x"], df["y"] = proj.xy[:, 0], proj.xy[:, 1]
        df["tsne_x"], df["tsne_y"] = tsne.xy[:, 0], tsne.xy[:, 1]
        df.attrs["explained"] = proj.explained
        k = min(NEIGHBOURS_KEPT_K, len(df) - 1)
        df.attrs["kept"] = {
            "k": k,
            "pca": core_emb.neighbours_kept(vecs, proj.xy, k),
            "tsne": core_emb.neighbours_kept(vecs, tsne.xy, k),
            "perplexity": core_emb.tsne_perplexity(len(df)),
        }
    return df.drop(columns=["ids"]) if len(df) else df


@st.cache_data(max_entries=64, show_spinner=False)
def cached_neighbours(model_id: str, word: str, k: int) -> pd.DataFrame:
    table, norms = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    ids = core_emb.word_ids(tok, word)
    found = core_emb.nearest_neighbours(
        table, core_emb.word_vector(table, ids), k, exclude=ids, norms=norms
    )
    return pd.DataFrame(
        {
            "token": [visible(tok.decode([n.token_id])) for n in found],
            "id": [n.token_id for n in found],
            "cosine": [n.cosine for n in found],
        }
    )


@st.cache_data(max_entries=64, show_spinner=False)
def cached_analogy(model_id: str, a: str, b: str, c: str, k: int) -> pd.DataFrame:
    table, norms = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    ia, ib, ic = (core_emb.word_ids(tok, w) for w in (a, b, c))
    vec = core_emb.analogy_vector(table, ia, ib, ic)
    found = core_emb.nearest_neighbours(table, vec, k, exclude=tuple({*ia, *ib, *ic}), norms=norms)
    return pd.DataFrame(
        {
            "rank": range(1, len(found) + 1),
            "token": [visible(tok.decode([n.token_id])) for n in found],
            "cosine": [n.cosine for n in found],
        }
    )


@st.cache_data(max_entries=32, show_spinner="Embedding the sentences with MiniLM…")
def cached_sentence_embeddings(sentences: tuple[str, ...]) -> np.ndarray:
    return core_emb.sentence_embeddings(get_encoder(), list(sentences))


@st.cache_data(max_entries=16, show_spinner="Running the model over each sentence…")
def cached_word_in_context(
    model_id: str, word: str, sentences: tuple[str, ...]
) -> core_emb.WordInContext:
    return core_emb.word_in_context(load_model(model_id), word, list(sentences))


def embedding_map_chart(
    df: pd.DataFrame, title: str | list[str], legend_columns: int = 3
) -> alt.LayerChart:
    """Points coloured by group; a word is printed beside its point only where it overlaps no
    other word or point (`label_side` from `charts.place_labels`; rows without it are all
    labelled on the right; 2 above, -2 below): the hidden ones are in the tooltip and counted
    by the page."""
    if "label_side" not in df:
        df = df.assign(label_side=1)
    # words in the theme's text colour (charts.fitted): in their group's colour the pale ones
    # (light blue, pink) did not read on white, the dark ones not on the dark theme; the dot
    # beside each word carries the group
    words = alt.Chart(df, title=title).encode(
        x=alt.X(
            "x:Q",
            axis=alt.Axis(labels=False, ticks=False),
            title=None,
            scale=alt.Scale(zero=False, nice=False, padding=12),
        ),
        y=alt.Y(
            "y:Q",
            axis=alt.Axis(labels=False, ticks=False),
            title=None,
            scale=alt.Scale(zero=False, nice=False, padding=12),
        ),
        tooltip=["group", "word", "tokens"],
    )
    dots = words.mark_circle(size=70).encode(
        color=alt.Color(
            "group:N",
            title="group",
            legend=alt.Legend(orient="bottom", columns=legend_columns, labelLimit=260),
        ),
    )
    right = (
        words.transform_filter("datum.label_side == 1")
        .mark_text(dx=7, align="left", fontSize=11)
        .encode(text="word:N")
    )
    left = (
        words.transform_filter("datum.label_side == -1")
        .mark_text(dx=-7, align="right", fontSize=11)
        .encode(text="word:N")
    )
    above = (
        words.transform_filter("datum.label_side == 2")
        .mark_text(dy=-12, align="center", fontSize=11)
        .encode(text="word:N")
    )
    below = (
        words.transform_filter("datum.label_side == -2")
        .mark_text(dy=12, align="center", fontSize=11)
        .encode(text="word:N")
    )
    return (dots + right + left + above + below).properties(height=360)


def labelled_points(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """`df` (x, y, word, group) with `label_side` set where a label fits without overlapping
    (0 = hidden), and how many were hidden. Groups take turns, so every group keeps labels."""
    df = df.reset_index(drop=True)  # one row per label: a repeated index would place one twice
    order = df.assign(_n=df.groupby("group").cumcount()).sort_values("_n", kind="stable").index
    shown, side = place_labels(
        df.loc[order, "x"].to_numpy(),
        df.loc[order, "y"].to_numpy(),
        df.loc[order, "word"].astype(str).tolist(),
        width=240,
        height=240,
    )  # a phone's plot: wider screens only spread them
    out = df.copy()
    out.loc[order, "label_side"] = np.where(shown, side, 0)
    return out, int((~shown).sum())


def cosine_matrix_chart(
    sim: np.ndarray, labels: list[str], title: str, domain: tuple[float, float] = (-0.2, 1.0)
) -> alt.LayerChart:
    df = matrix_frame(sim, title, labels, labels)
    df["ink"] = ink_for(df["value"].to_numpy(), "blues", domain)  # readable on its own cell
    base = alt.Chart(df, title=title).encode(
        x=alt.X("col:N", sort=labels, title=None, axis=alt.Axis(labelLimit=140)),
        y=alt.Y("row:N", sort=labels, title=None, axis=alt.Axis(labelLimit=140)),
    )
    heat = base.mark_rect().encode(
        color=alt.Color(
            "value:Q", scale=alt.Scale(scheme="blues", domain=list(domain)), title="cosine"
        ),
        tooltip=["row", "col", alt.Tooltip("value:Q", format=".3f")],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("value:Q", format=".2f"), color=ink_encoding()
    )
    return (heat + text).properties(height=min(520, 40 * len(labels) + 40))


def word_in_context_chart(df: pd.DataFrame, layer: int) -> alt.LayerChart:
    line = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="hidden state (0 = input to the first block)"),
            y=alt.Y(
                "mean cosine:Q",
                scale=alt.Scale(domain=[0, 1]),
                title="mean cosine of its vectors",  # the full phrase ran off the chart
            ),
            tooltip=["layer", alt.Tooltip("mean cosine:Q", format=".3f")],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(color="#e6550d").encode(x="layer:O")
    )
    return (line + rule).properties(height=220)
