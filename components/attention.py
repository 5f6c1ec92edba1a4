"""Charts and cached wrappers for pages 07 (embeddings), 08 (attention) and 09 (multi-head).

Chart builders are pure `data -> alt.Chart`; wrappers take hashable arguments (model id, text,
numbers) and call core. Token text only ever reaches Vega as data, never as HTML.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.models import get_encoder, get_trace, load_model
from components.tokens import visible
from core import attention as core_attention
from core import embeddings as core_emb
from core import interventions
from core.attention import ATTENTION_CAP, HeadProfile, HeadSteps
from core.trace import Trace

HEAT = alt.Scale(scheme="oranges", domain=[0, 1])
# Channel objects, not strings or dicts: Altair validates those against the schema on every
# redraw, which alone cost ~0.2 s per layer change here.
TIPS = [alt.Tooltip("query token:N"), alt.Tooltip("key token:N"),
        alt.Tooltip("weight:Q", format=".3f")]


def draw(chart: alt.TopLevelMixin, extra: int = 70, width: str = "content") -> None:
    """st.altair_chart for single and layered charts. Streamlit 1.67 fits them into a box
    (axes and legend included), which squeezes heatmaps with long labels: at content width the
    spec's own size is kept ('pad'); stretched, the height is passed with room for the axes."""
    if width == "content":
        st.altair_chart(chart.properties(autosize=alt.AutoSizeParams(type="pad")),
                        width="content")
        return
    h = getattr(chart, "height", alt.Undefined)
    st.altair_chart(chart, width=width, height=int(h) + extra if isinstance(h, int) else "content")


def token_labels(tokens: tuple[str, ...] | list[str]) -> list[str]:
    """Unique, readable axis labels: position and the token with its spaces made visible."""
    return [f"{i:>2} {visible(t)[:14]}" for i, t in enumerate(tokens)]


# --------------------------------------------------------------------------------- page 08 --


def attention_frame(weights: np.ndarray, tokens) -> pd.DataFrame:
    """Long form of a (T, T) attention map: one row per query/key pair on or below the diagonal
    (for a causal map) or every pair (bidirectional)."""
    labels = token_labels(tokens)
    t = weights.shape[0]
    q, k = np.indices((t, t))
    keep = (k <= q) | (np.triu(weights, 1).sum() > 0)
    return pd.DataFrame({
        "query": q[keep], "key": k[keep],
        "query token": np.array(labels)[q[keep]], "key token": np.array(labels)[k[keep]],
        "weight": weights[keep].astype(np.float32),
    })


def attention_click_chart(df: pd.DataFrame, labels: list[str], title: str,
                          size: int = 420) -> alt.VConcatChart:
    """Query x key heatmap; clicking a cell or a token picks the query row, shown as bars."""
    last = int(df["query"].max())
    pick = alt.selection_point(fields=["query"], on="click", value=[{"query": last}],
                               clear=False, name="pick")
    heat = alt.Chart(df, title=title).mark_rect().encode(
        x=alt.X("key token:N", sort=labels, title="key (attended to)"),
        y=alt.Y("query token:N", sort=labels, title="query (attending)"),
        color=alt.Color("weight:Q", scale=HEAT, title="attention"),
        tooltip=TIPS,
    ).properties(width=size, height=size).add_params(pick)
    bars = alt.Chart(df, title="Where the clicked query token looks").mark_bar(
        color="#e6550d").encode(
        x=alt.X("key token:N", sort=labels, title=None, scale=alt.Scale(domain=labels)),
        y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 1]), title="attention"),
        tooltip=TIPS,
    ).transform_filter(pick).properties(width=size, height=140)
    return alt.vconcat(heat, bars)


def _matrix_frame(m: np.ndarray, name: str, rows: list[str], cols: list[str] | None = None
                  ) -> pd.DataFrame:
    r, c = np.indices(m.shape)
    cols = cols or [str(i) for i in range(m.shape[1])]
    return pd.DataFrame({"row": np.array(rows)[r.ravel()], "col": np.array(cols)[c.ravel()],
                         "value": m.ravel().astype(np.float32), "panel": name})


def head_steps_frame(steps: HeadSteps, model_weights: np.ndarray, tokens) -> pd.DataFrame:
    """The six stages as one long table; `shade` is each panel scaled to [-1, 1] for colour."""
    rows = token_labels(tokens)
    dims = [f"dim {i}" for i in range(steps.q.shape[1])]
    masked = np.where(np.isfinite(steps.masked), steps.masked, np.nan)
    panels = [
        (steps.q, "1. queries Q (token x dim)", dims),
        (steps.k, f"2. keys K (key/value head {steps.kv_head})", dims),
        (steps.scores, f"3. Q·Kᵀ x {steps.scale:.3f}", rows),
        (masked, "4. causal mask: future = -inf", rows),
        (steps.weights, "5. softmax per row (ours)", rows),
        (model_weights, "the model's own attention", rows),
    ]
    frames = []
    for m, name, cols in panels:
        df = _matrix_frame(m, name, rows, cols).dropna()
        df["shade"] = df["value"] / max(float(df["value"].abs().max()), 1e-12)
        df["x"] = np.tile(np.arange(m.shape[1]), m.shape[0])[~np.isnan(m.ravel())]
        df["y"] = np.repeat(np.arange(m.shape[0]), m.shape[1])[~np.isnan(m.ravel())]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def head_steps_chart(df: pd.DataFrame, columns: int = 3) -> alt.FacetChart:
    """Q, K, scaled scores, masked scores, softmax (ours) and the model's own, as one facet."""
    order = list(dict.fromkeys(df["panel"]))
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("x:O", axis=None), y=alt.Y("y:O", axis=None),
        color=alt.Color("shade:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1],
                                                   reverse=True), legend=None),
        tooltip=[alt.Tooltip("panel:N"), alt.Tooltip("row:N"), alt.Tooltip("col:N"),
                 alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=190, height=190).facet(
        facet=alt.Facet("panel:N", sort=order, title=None), columns=columns,
    ).resolve_scale(x="independent")


# --------------------------------------------------------------------------------- page 09 --


def small_multiples_chart(layer_attn: np.ndarray, head_titles: list[str], columns: int = 5,
                          size: int = 130) -> alt.FacetChart:
    """Every head of one layer as a small (query x key) heatmap, titled by its measured role."""
    h, t, _ = layer_attn.shape
    head, q, k = np.indices((h, t, t))
    keep = k <= q
    df = pd.DataFrame({"head": np.array(head_titles)[head[keep]], "query": q[keep],
                       "key": k[keep], "weight": layer_attn[keep].astype(np.float32)})
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("key:O", axis=None), y=alt.Y("query:O", axis=None),
        color=alt.Color("weight:Q", scale=HEAT, title="attention"),
        tooltip=[alt.Tooltip("head:N"), alt.Tooltip("query:O"), alt.Tooltip("key:O"),
                 alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=size, height=size).facet(
        facet=alt.Facet("head:N", sort=head_titles, title=None), columns=columns)


def head_titles(profile: HeadProfile, layer: int, n_heads: int) -> list[str]:
    return [f"head {h}: {profile.label(layer, h)}" for h in range(n_heads)]


def profile_frame(profile: HeadProfile) -> pd.DataFrame:
    s = profile.scores()  # (4, L, H)
    _, n_layers, n_heads = s.shape
    layer, head = np.indices((n_layers, n_heads))
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for name, values in zip(HeadProfile.PATTERNS, s, strict=True):
        df[name] = values.ravel()
    if profile.induction_low is not None and profile.induction_high is not None:
        df["induction lowest seed"] = profile.induction_low.ravel()
        df["induction highest seed"] = profile.induction_high.ravel()
    df["role"] = [profile.label(int(r.layer), int(r.head)) for r in df.itertuples()]
    df["strength"] = s.max(axis=0).ravel()
    return df


def head_map_chart(df: pd.DataFrame, layer: int) -> alt.LayerChart:
    """Layers x heads, coloured by each head's measured role, stronger = more opaque."""
    roles = [*HeadProfile.PATTERNS, "mixed"]
    base = alt.Chart(df).mark_rect().encode(
        x=alt.X("head:O"), y=alt.Y("layer:O", sort="descending"),
        color=alt.Color("role:N", scale=alt.Scale(domain=roles, range=[
            "#1f77b4", "#7f7f7f", "#2ca02c", "#d62728", "#eeeeee"]),
            legend=alt.Legend(orient="bottom", columns=3, title=None)),
        opacity=alt.Opacity("strength:Q", scale=alt.Scale(domain=[0, 1], range=[0.25, 1]),
                            legend=None),
        tooltip=["layer", "head", "role", *[alt.Tooltip(f"{p}:Q", format=".2f")
                                             for p in HeadProfile.PATTERNS]],
    )
    mark = alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(color="black").encode(
        y=alt.Y("layer:O", sort="descending"))
    return (base + mark.mark_rect(fill=None, stroke="black", strokeWidth=2)).properties(
        width=280, height=max(160, 12 * int(df["layer"].max() + 1)))


def next_token_change_chart(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("token:N", sort=list(dict.fromkeys(df["token"])), title=None),
        x=alt.X("probability:Q", title="p(next token)"),
        yOffset="heads:N",
        color=alt.Color("heads:N", scale=alt.Scale(range=["#9ecae1", "#e6550d"]), title=None),
        tooltip=["token", "heads", alt.Tooltip("probability:Q", format=".4f")],
    ).properties(width=420, height=34 * df["token"].nunique())


def gqa_chart(n_heads: int, n_kv_heads: int) -> alt.Chart:
    g = n_heads // n_kv_heads
    df = pd.DataFrame({"q": list(range(n_heads)), "kv": [h // g for h in range(n_heads)]})
    base = alt.Chart(df).encode(
        x=alt.X("q:O", title="query head"), y=alt.Y("kv:O", title="key/value head"),
        tooltip=[alt.Tooltip("q:O", title="query head"),
                 alt.Tooltip("kv:O", title="key/value head")])
    return (base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("kv:N", legend=None, scale=alt.Scale(scheme="tableau10")))
        + base.mark_text(color="white").encode(text="q:O")).properties(
        width=min(640, 40 * n_heads), height=36 * n_kv_heads)


# --------------------------------------------------------------------------- cached wrappers --


def attention_trace(text: str) -> Trace:
    return get_trace(text, cap=ATTENTION_CAP)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_head_steps(model_id: str, text: str, layer: int, head: int) -> HeadSteps:
    trace = get_trace(text, cap=ATTENTION_CAP, model_id=model_id)
    return core_attention.recompute_head(load_model(model_id).model, trace.hidden_states[layer],
                                         layer, head)


@st.cache_data(max_entries=4, show_spinner="Measuring every head on repeated random sequences…")
def cached_profile(model_id: str) -> HeadProfile:
    return core_attention.head_roles(load_model(model_id).model)


@st.cache_resource(max_entries=16, show_spinner="Running MiniLM over the prompt…")
def cached_encoder_attention(text: str) -> core_attention.EncoderAttention:
    return core_attention.encoder_attention(get_encoder(), text)


@st.cache_data(max_entries=64, show_spinner="Running the model with heads switched off…")
def cached_ablation(model_id: str, text: str, layer: int, heads: tuple[int, ...]
                    ) -> interventions.NextTokenChange:
    trace = get_trace(text, cap=ATTENTION_CAP, model_id=model_id)
    model = load_model(model_id).model
    ablated = interventions.last_logits(model, trace.ids.tolist(), {layer: heads})
    return interventions.next_token_change(trace.last_logits, ablated)


# --------------------------------------------------------------------------------- page 07 --


@st.cache_resource(max_entries=2, show_spinner=False)
def embedding_tables(model_id: str) -> tuple[np.ndarray, np.ndarray]:
    table = core_emb.embedding_matrix(load_model(model_id).model)  # a view of the weights
    return table, np.linalg.norm(table, axis=1)  # (vocab,) row lengths, not a second table


@st.cache_data(max_entries=32, show_spinner=False)
def cached_word_points(model_id: str, groups_text: str) -> pd.DataFrame:
    """One row per word: group, word, its tokens, and its PCA coordinates."""
    table, _ = embedding_tables(model_id)
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
    table, _ = embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    vecs = np.stack([core_emb.word_vector(table, core_emb.word_ids(tok, w))
                     for _, words in core_emb.parse_groups(groups_text) for w in words
                     if core_emb.word_ids(tok, w)])
    xy = core_emb.umap_2d(vecs).xy
    _UMAP_DONE.add((model_id, groups_text))
    return xy


@st.cache_data(max_entries=64, show_spinner=False)
def cached_neighbours(model_id: str, word: str, k: int) -> pd.DataFrame:
    table, norms = embedding_tables(model_id)
    tok = load_model(model_id).tokenizer
    ids = core_emb.word_ids(tok, word)
    found = core_emb.nearest_neighbours(table, core_emb.word_vector(table, ids), k, exclude=ids,
                                        norms=norms)
    return pd.DataFrame({"token": [visible(tok.decode([n.token_id])) for n in found],
                         "id": [n.token_id for n in found], "cosine": [n.cosine for n in found]})


@st.cache_data(max_entries=64, show_spinner=False)
def cached_analogy(model_id: str, a: str, b: str, c: str, k: int) -> pd.DataFrame:
    table, norms = embedding_tables(model_id)
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


def similarity_chart(sim: np.ndarray, labels: list[str], title: str,
                     domain: tuple[float, float] = (-0.2, 1.0)) -> alt.LayerChart:
    df = _matrix_frame(sim, title, labels, labels)
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


def bar_chart(df: pd.DataFrame, label: str, value: str, title: str) -> alt.Chart:
    return alt.Chart(df, title=title).mark_bar(color="#3182bd").encode(
        y=alt.Y(f"{label}:N", sort=None, title=None), x=alt.X(f"{value}:Q"),
        tooltip=[label, alt.Tooltip(f"{value}:Q", format=".3f")]).properties(
        height=20 * len(df))


def layer_similarity_chart(df: pd.DataFrame, layer: int) -> alt.LayerChart:
    line = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("layer:O", title="hidden state (0 = input to the first block)"),
        y=alt.Y("mean cosine:Q", scale=alt.Scale(domain=[0, 1]),
                title="mean cosine between the word's vectors"),
        tooltip=["layer", alt.Tooltip("mean cosine:Q", format=".3f")])
    rule = alt.Chart(pd.DataFrame({"layer": [layer]})).mark_rule(color="#e6550d").encode(
        x="layer:O")
    return (line + rule).properties(height=220)
