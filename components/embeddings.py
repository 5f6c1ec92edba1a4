"""Embeddings (concept 07): word maps, neighbours, analogies, similarity matrices, words in
context; cached wrappers around core.embeddings."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart, ink_encoding, ink_for, matrix_frame, place_labels
from components.frame import plain_markdown
from components.models import get_encoder, load_model
from components.tokens import visible
from core import embeddings as core_emb
from core.embeddings import (
    DEFAULT_GROUPS,
    MAX_GROUPS,
    MAX_SENTENCES,
    MAX_WORD_CHARS,
    MAX_WORDS_PER_GROUP,
    agreement_by_layer,
    cosine_matrix,
    pca_2d,
    text_lines,
)


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


def contextual_section(lm) -> None:
    """One word in several sentences: its static rows against its contextual vectors, by layer."""
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
    wic = cached_word_in_context(lm.model_id, ctx_word, ctx_sentences)
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
        wic = cached_word_in_context(lm.model_id, ctx_word, ctx_sentences)
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
            cosine_matrix_chart(
                cosine_matrix(wic.static), ctx_labels, "static: the embedding-table rows"
            ),
        )
    with k2:
        draw_chart(
            cosine_matrix_chart(
                cosine_matrix(wic.contextual[:, layer]),
                ctx_labels,
                f"contextual: hidden state {layer}",
            ),
        )
    curve = pd.DataFrame(
        {"layer": range(n_states), "mean cosine": agreement_by_layer(wic.contextual)}
    )
    draw_chart(word_in_context_chart(curve, layer), width="stretch")
    st.caption(
        "Layer 0 is the input to the first block (for GPT-2 it already includes the "
        "position embedding). The last state has the model's final norm applied."
    )


def sentence_section() -> None:
    """MiniLM sentence embeddings: their cosine matrix and a PCA map."""
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
    vecs = cached_sentence_embeddings(sentences)
    labels = [f"{i + 1}. {s[:28]}" for i, s in enumerate(sentences)]
    s1, s2 = st.columns([3, 2])
    with s1:
        draw_chart(cosine_matrix_chart(cosine_matrix(vecs), labels, "cosine similarity"))
    xy = pca_2d(vecs).xy
    with s2:
        sentence_points, n_hidden = labelled_points(
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
            embedding_map_chart(sentence_points, "map (PCA)", legend_columns=1),
        )
        if n_hidden:
            st.caption(
                f"{n_hidden} of {len(sentences)} numbers hidden where they would overlap; "
                "hover the points."
            )


def word_groups_section(lm, table) -> None:
    """Word groups typed by the learner, mapped by PCA and t-SNE, with the neighbours each keeps."""
    groups_text = st.text_area(
        f"Groups, one per line as 'name: word, word, …' (at most {MAX_GROUPS} groups of "
        f"{MAX_WORDS_PER_GROUP} words)",
        DEFAULT_GROUPS,
        key="embeddings.groups",
        height=130,
    )
    points = cached_word_points(lm.model_id, groups_text)
    if len(points) < 3:
        st.warning(
            "Give at least three words (e.g. 'animals: cat, dog, cow'); showing the defaults."
        )
        groups_text = DEFAULT_GROUPS
        points = cached_word_points(lm.model_id, groups_text)
    kept = points.attrs["kept"]
    left, right = st.columns(2)
    with left:
        ev = points.attrs.get("explained", (0.0, 0.0))
        shown, hidden = labelled_points(points)
        draw_chart(
            embedding_map_chart(
                shown,
                [
                    f"PCA: {ev[0]:.0%} + {ev[1]:.0%} of the variance",
                    f"{kept['pca']:.0%} of neighbours kept",
                ],
            )
        )
    with right:
        tsne_shown, tsne_hidden = labelled_points(
            points.assign(x=points["tsne_x"], y=points["tsne_y"])
        )
        draw_chart(
            embedding_map_chart(tsne_shown, ["t-SNE", f"{kept['tsne']:.0%} of neighbours kept"])
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


def clean_word(key: str, default: str) -> str:
    """The word typed under `key`, cut to its cap, or `default` with a note when empty."""
    word = st.session_state.get(key, "").strip()[:MAX_WORD_CHARS]
    if not word:
        st.info(f"Empty word: using '{default}'.")
        return default
    return word
