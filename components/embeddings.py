"""Embeddings (concept 07): word maps (PCA at once; t-SNE and UMAP from one button, UMAP by
umap-learn in a helper process), vocabulary search and neighbours, analogies, similarity
matrices, words in context; cached wrappers around core.embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import (
    bar_chart,
    draw_chart,
    ink_encoding,
    ink_for,
    matrix_frame,
    place_labels,
)
from components.frame import plain_markdown
from components.jobs import load_factor, run_job
from components.models import get_encoder, load_model
from components.tokens import visible
from core import embeddings as core_emb
from core.runtime.worker import Worker, WorkerDied, WorkerError, numba_cache_dir

WORKER_IDLE_S = 60.0  # the UMAP helper exits after a minute without a map to draw


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_embedding_tables(model_id: str) -> tuple[np.ndarray, np.ndarray]:
    table = core_emb.embedding_matrix(load_model(model_id).model)  # a view of the weights
    return table, np.linalg.norm(table, axis=1)  # (vocab,) row lengths, not a second table


NEIGHBOURS_KEPT_K = 5


def _word_rows(model_id: str, groups_text: str) -> list[dict]:
    tok = load_model(model_id).tokenizer
    rows = []
    for group, words in core_emb.parse_groups(groups_text):
        for w in words:
            ids = core_emb.word_ids(tok, w)
            if ids:
                rows.append({"group": group, "word": w, "tokens": len(ids), "ids": ids})
    return rows


@st.cache_data(max_entries=32, show_spinner=False)
def cached_word_vectors(model_id: str, groups_text: str) -> np.ndarray:
    """The words' input vectors (a word of several tokens: the mean of their rows): (n, d)."""
    table, _ = cached_embedding_tables(model_id)
    rows = _word_rows(model_id, groups_text)
    return np.stack([core_emb.word_vector(table, r["ids"]) for r in rows]) if rows else table[:0]


@st.cache_data(max_entries=32, show_spinner=False)
def cached_word_points(model_id: str, groups_text: str) -> pd.DataFrame:
    """One row per word: group, word, its tokens, its PCA coordinates; in `attrs`, PCA's
    explained variance and the share of nearest neighbours the PCA map keeps."""
    df = pd.DataFrame(_word_rows(model_id, groups_text))
    if len(df) >= 2:
        vecs = cached_word_vectors(model_id, groups_text)
        proj = core_emb.pca_2d(vecs)
        df["x"], df["y"] = proj.xy[:, 0], proj.xy[:, 1]
        df.attrs["explained"] = proj.explained
        k = core_emb.kept_k(len(df), NEIGHBOURS_KEPT_K)
        df.attrs["kept"] = {"k": k, "pca": core_emb.neighbours_kept(vecs, proj.xy, k)}
    return df.drop(columns=["ids"]) if len(df) else df


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_token_texts(model_id: str) -> list[str]:
    """What every token of the vocabulary decodes to, by id (for the search box)."""
    tok = load_model(model_id).tokenizer
    return tok.batch_decode([[i] for i in range(len(tok))])


def token_choices(model_id: str, word: str, limit: int = 30) -> dict[str, tuple[int, ...]]:
    """The search box's choices: the word as typed (mid-sentence; the mean of its tokens when it
    splits), then the vocabulary's tokens containing it, best match first."""
    tok = load_model(model_id).tokenizer
    texts = cached_token_texts(model_id)
    table, _ = cached_embedding_tables(model_id)
    ids = core_emb.word_ids(tok, word)
    pieces = " + ".join(repr(texts[i]) for i in ids[:6]) + (" + …" if len(ids) > 6 else "")
    first = (
        f"{visible(repr(texts[ids[0]]))}, token {ids[0]}"
        if len(ids) == 1
        else f"as typed: mean of {len(ids)} tokens {visible(pieces)}"
    )
    choices = {first: ids}
    for i in core_emb.find_tokens(texts[: table.shape[0]], word, limit):
        if (i,) != ids:
            choices[f"{visible(repr(texts[i]))}, token {i}"] = (i,)
    return choices


@st.cache_data(max_entries=64, show_spinner=False)
def cached_neighbours(model_id: str, ids: tuple[int, ...], k: int) -> pd.DataFrame:
    """The k tokens of the whole table closest (cosine) to the mean of the rows `ids`."""
    table, norms = cached_embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
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


# ------------------------------------------------------------- t-SNE and UMAP, one button --


@st.cache_resource(show_spinner=False)
def projection_worker() -> Worker:
    """The one UMAP helper process of this server, shared by every session, in order."""
    return Worker(idle_s=WORKER_IDLE_S, env={"NUMBA_CACHE_DIR": str(numba_cache_dir())})


def umap_estimate_s(worker: Worker) -> float:
    """Seconds a map will take on an idle machine, times the machine's load: the helper is
    running (0.5 s), starts with numba's code on disk (about 4 s), or compiles it (about 60 s,
    the first map after an install)."""
    if worker.pid is not None:
        base = 0.5
    elif any(numba_cache_dir().rglob("*.nbi")):
        base = 4.0
    else:
        base = 60.0
    return base * load_factor()


@dataclass(frozen=True)
class MapSettings:
    n_neighbors: int
    min_dist: float
    perplexity: int


def map_settings(
    prefix: str, n_neighbors: int, perplexity: int, inline: bool = True
) -> MapSettings:
    """UMAP's and t-SNE's controls, with what each trades."""
    c1, c2, c3 = st.columns(3) if inline else (st, st, st)
    nn = c1.slider("UMAP n_neighbors", 2, 50, n_neighbors, key=f"{prefix}.n_neighbors")
    md = c2.slider("UMAP min_dist", 0.0, 0.99, 0.1, 0.01, key=f"{prefix}.min_dist")
    perp = c3.slider("t-SNE perplexity", 2, 50, perplexity, key=f"{prefix}.perplexity")
    st.caption(
        "**n_neighbors**: how many neighbours UMAP looks at for each point; few keep small "
        "clusters apart, many show more of the overall layout. **min_dist**: how close UMAP "
        "may pack points; small gives tight clumps, large spreads them evenly. "
        "**perplexity**: t-SNE's effective number of neighbours; small favours local detail, "
        "large the broad structure. n_neighbors and perplexity are cut to the number of points "
        "minus one."
    )
    return MapSettings(nn, md, perp)


def _umap_in_helper(report: object) -> object:
    worker = projection_worker()

    def call(x: np.ndarray, n_neighbors: int, min_dist: float) -> dict[str, np.ndarray]:
        def waiting(seconds: float) -> None:
            report(min(0.1 + seconds / 90.0, 0.95), f"UMAP in its helper process: {seconds:.0f} s")

        return worker.call(
            "core.embeddings:umap_layout",
            {"x": x},
            on_wait=waiting,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            dims=[2],
        )

    return call


def projection_job(key: tuple, x: np.ndarray, settings: MapSettings) -> core_emb.Maps | None:
    """One button: t-SNE (numpy, here) and UMAP (umap-learn, in the helper process) of `x`,
    shared by every learner with the same points and settings. None until pressed or when the
    helper failed (said in one sentence)."""
    worker = projection_worker()
    try:
        return run_job(
            (*key, settings),
            lambda report: core_emb.projection_maps(
                x,
                _umap_in_helper(report),
                settings.n_neighbors,
                settings.min_dist,
                settings.perplexity,
                NEIGHBOURS_KEPT_K,
                report,
            ),
            start_label="Draw t-SNE and UMAP",
            estimate_s=umap_estimate_s(worker),
            caps=(
                f"UMAP runs in a helper process (umap-learn) that exits after "
                f"{WORKER_IDLE_S:.0f} s without a map to draw; maps are kept for everyone."
            ),
        )
    except WorkerDied as exc:
        st.error(str(exc))
    except WorkerError as exc:
        st.error(f"UMAP failed in its helper process ({exc}); try other settings.")
    return None


def map_pair(points: pd.DataFrame, maps: core_emb.Maps, legend_columns: int = 3) -> int:
    """UMAP and t-SNE side by side, each titled with the share of neighbours it keeps; returns
    how many labels were hidden on the fuller map."""
    hidden = 0
    left, right = st.columns(2)
    panels = [(right, "t-SNE", maps.tsne, "tsne")]
    if maps.umap is not None:
        panels.insert(0, (left, "UMAP (umap-learn)", maps.umap, "umap"))
    else:
        left.info(f"UMAP needs at least {core_emb.UMAP_MIN_POINTS} points; t-SNE only.")
    for col, name, xy, tag in panels:
        shown, n_hidden = labelled_points(points.assign(x=xy[:, 0], y=xy[:, 1]))
        hidden = max(hidden, n_hidden)
        with col:
            title = [name, f"{maps.kept[tag]:.0%} of neighbours kept"]
            draw_chart(embedding_map_chart(shown, title, legend_columns=legend_columns))
    return hidden


def kept_sentence(maps: core_emb.Maps, what: str, d: int) -> str:
    """One caption that says what the three maps keep, from the computed figures."""
    kept = maps.kept
    names = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
    top = max(kept.values())
    best = [names[m] for m, v in kept.items() if f"{v:.0%}" == f"{top:.0%}"]
    if len(best) == len(kept):
        verdict = "they keep as many"
    else:
        verdict = " and ".join(best) + (" keeps" if len(best) == 1 else " keep") + " the most"
    parts = ", ".join(f"{names[m]} {v:.0%}" for m, v in kept.items())
    umap_part = (
        f"; UMAP used n_neighbors {maps.n_neighbors}, min_dist {maps.min_dist:g}"
        if maps.umap is not None
        else ""
    )
    return (
        f"Of each {what}'s {maps.k} nearest {what}s in the full {d} dimensions, each map keeps "
        f"among its {maps.k} nearest on the map: {parts}; {verdict}. t-SNE "
        f"used perplexity {maps.perplexity:g}{umap_part}. Distances between clusters mean "
        "little on t-SNE and UMAP maps."
    )


# ------------------------------------------------------------------------------ sections --


def clean_word(key: str, default: str) -> str:
    """A word box's text, stripped and capped; the default (said) when empty."""
    word = st.session_state.get(key, "").strip()[: core_emb.MAX_WORD_CHARS]
    if not word:
        st.info(f"Empty word: using '{default}'.")
        return default
    return word


def word_map_section(model_id: str, d: int) -> None:
    """Word groups: PCA at once; t-SNE and UMAP side by side from one button."""
    st.subheader("Word groups on a map")
    left, right = st.columns([3, 2])
    groups_text = right.text_area(
        f"Groups, one per line as 'name: word, word, …' (at most {core_emb.MAX_GROUPS} groups "
        f"of {core_emb.MAX_WORDS_PER_GROUP} words)",
        core_emb.DEFAULT_GROUPS,
        key="embeddings.groups",
        height=130,
    )
    points = cached_word_points(model_id, groups_text)
    if len(points) < 3:
        st.warning(
            "Give at least three words (e.g. 'animals: cat, dog, cow'); showing the defaults."
        )
        groups_text = core_emb.DEFAULT_GROUPS
        points = cached_word_points(model_id, groups_text)
    kept, ev = points.attrs["kept"], points.attrs.get("explained", (0.0, 0.0))
    with left:
        shown, hidden = labelled_points(points)
        title = [
            f"PCA: {ev[0]:.0%} + {ev[1]:.0%} of the variance",
            f"{kept['pca']:.0%} of neighbours kept",
        ]
        draw_chart(embedding_map_chart(shown, title))
    with right:
        settings = map_settings("embeddings.map", 15, 10, inline=False)
    st.caption(
        f"PCA keeps the two directions along which the vectors vary most: of each word's "
        f"{kept['k']} nearest words in the full {d} dimensions, it keeps {kept['pca']:.0%} among "
        f"its {kept['k']} nearest on the map. t-SNE and UMAP instead move the points until each "
        "one's nearest words stay near it."
    )
    vecs = cached_word_vectors(model_id, groups_text)
    maps = projection_job(("embeddings.maps", model_id, groups_text), vecs, settings)
    if maps is not None:
        hidden = max(hidden, map_pair(points, maps))
        st.caption(kept_sentence(maps, "word", d))
    if hidden:
        st.caption(
            f"Words are printed only where they overlap no other word: up to {hidden} of "
            f"{len(points)} are hidden on a map (hover a point for its word, the colour "
            "gives its group)."
        )


def neighbours_section(model_id: str, n_rows: int) -> None:
    """The vocabulary search with the nearest tokens of the whole table, and analogies."""
    st.subheader("Search the vocabulary: nearest neighbours, analogies")
    c1, c2 = st.columns(2)
    with c1:
        st.text_input(
            "Search a word or token",
            "king",
            key="embeddings.word",
            bind="query-params",
            max_chars=core_emb.MAX_WORD_CHARS,
        )
        word = clean_word("embeddings.word", "king")
        choices = token_choices(model_id, word)
        picked = st.selectbox(
            f"{len(choices) - 1} tokens of the vocabulary contain it"
            + (f" (the first {len(choices) - 1} shown)" if len(choices) > 30 else ""),
            list(choices),
            key="embeddings.token",
        )
        ids = choices.get(picked, next(iter(choices.values())))
        k = st.slider("How many neighbours", 3, 30, 10, key="embeddings.k", bind="query-params")
        draw_chart(
            bar_chart(
                cached_neighbours(model_id, ids, k),
                "token",
                "cosine",
                f"Closest of all {n_rows:,} tokens (cosine)",
            ),
            width="stretch",
        )
    with c2:
        a1, a2, a3 = st.columns(3)
        a1.text_input("A", "man", key="embeddings.a", max_chars=core_emb.MAX_WORD_CHARS)
        a2.text_input("is to B", "king", key="embeddings.b", max_chars=core_emb.MAX_WORD_CHARS)
        a3.text_input(
            "as C is to ?", "woman", key="embeddings.c", max_chars=core_emb.MAX_WORD_CHARS
        )
        a, b, c = (
            clean_word(f"embeddings.{x}", d)
            for x, d in zip("abc", ("man", "king", "woman"), strict=True)
        )
        ranked = cached_analogy(model_id, a, b, c, 10)
        draw_chart(
            bar_chart(ranked, "token", "cosine", "B − A + C, closest tokens (inputs left out)"),
            width="stretch",
        )
        st.caption(
            "In a small model's input table, analogies often land on a near-synonym of B; "
            "the ranking shows how close the intended answer came."
        )


DEFAULT_SENTENCES = (
    "The cat sat on the mat.\nA kitten was resting on the rug.\n"
    "Stock prices fell sharply today.\nThe market dropped this morning.\n"
    "I love pizza.\nPasta is my favourite dinner."
)


def sentence_section() -> None:
    """MiniLM sentence vectors: a similarity matrix, PCA at once, t-SNE and UMAP on demand."""
    st.subheader("Sentence embeddings (MiniLM)")
    raw = st.text_area(
        f"Sentences, one per line (at most {core_emb.MAX_SENTENCES})",
        DEFAULT_SENTENCES,
        key="embeddings.sentences",
        height=130,
    )
    sentences = core_emb.text_lines(raw)
    if len(sentences) < 2:
        st.info("Give at least two sentences; showing the examples.")
        sentences = tuple(DEFAULT_SENTENCES.splitlines())
    vecs = cached_sentence_embeddings(sentences)
    labels = [f"{i + 1}. {s[:28]}" for i, s in enumerate(sentences)]
    points = pd.DataFrame(
        {
            "word": [str(i + 1) for i in range(len(sentences))],
            "group": labels,
            "tokens": [len(s.split()) for s in sentences],
        }
    )
    s1, s2 = st.columns([3, 2])
    with s1:
        draw_chart(cosine_matrix_chart(core_emb.cosine_matrix(vecs), labels, "cosine similarity"))
    xy = core_emb.pca_2d(vecs).xy
    with s2:
        shown, n_hidden = labelled_points(points.assign(x=xy[:, 0], y=xy[:, 1]))
        draw_chart(embedding_map_chart(shown, "map (PCA)", legend_columns=1))
    settings = map_settings("embeddings.sent_map", 4, 3)
    maps = projection_job(("embeddings.sentence_maps", sentences), vecs, settings)
    if maps is not None:
        n_hidden = max(n_hidden, map_pair(points, maps, legend_columns=1))
        st.caption(kept_sentence(maps, "sentence", vecs.shape[1]))
    if n_hidden:
        st.caption(
            f"{n_hidden} of {len(sentences)} numbers hidden where they would overlap; "
            "hover the points."
        )


def contextual_section(lm) -> None:
    """One word in several sentences: its static rows against its contextual vectors, by layer."""
    w1, w2 = st.columns([1, 3])
    w1.text_input("Word", "bank", key="embeddings.ctx_word", max_chars=core_emb.MAX_WORD_CHARS)
    ctx_word = clean_word("embeddings.ctx_word", "bank")
    ctx_default = (
        "We sat on the river bank and fished.\nShe deposited cash at the bank.\n"
        "The bank raised its interest rates.\nGrass grew along the muddy bank."
    )
    ctx_raw = w2.text_area(
        "Sentences containing it", ctx_default, key="embeddings.ctx_sentences", height=110
    )
    ctx_sentences = core_emb.text_lines(ctx_raw)
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
                core_emb.cosine_matrix(wic.static), ctx_labels, "static: the embedding-table rows"
            ),
        )
    with k2:
        draw_chart(
            cosine_matrix_chart(
                core_emb.cosine_matrix(wic.contextual[:, layer]),
                ctx_labels,
                f"contextual: hidden state {layer}",
            ),
        )
    curve = pd.DataFrame(
        {"layer": range(n_states), "mean cosine": core_emb.agreement_by_layer(wic.contextual)}
    )
    draw_chart(word_in_context_chart(curve, layer), width="stretch")
    st.caption(
        "Layer 0 is the input to the first block (for GPT-2 it already includes the "
        "position embedding). The last state has the model's final norm applied."
    )
