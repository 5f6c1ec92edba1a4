"""RAG: the shared embedding indexes, cached retrieval, and the charts of the RAG page."""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import DARK_INK, LIGHT_INK, draw_chart, fitting_columns, ink_for
from components.jobs import run_job
from components.models import get_encoder, load_model
from core import rag
from core.rag import Chunk, RecallResult, Retrieval
from core.shared.corpus import corpus_source

METHOD_LABELS = {"dense": "Dense (MiniLM cosine)", "bm25": "BM25", "hybrid": "Hybrid (RRF)"}


# --- the embedding index: memory (every session), disk (every restart), or a job ------------


@st.cache_resource(show_spinner=False)
def _index_store() -> dict[tuple[int, int], np.ndarray]:
    """A per-process resource under the caching rule: one index per chunk setting the page's
    sliders allow, each read from disk or built once, kept for every learner."""
    return {}


_STORE_LOCK = threading.Lock()


def available_index(size: int, overlap: int) -> np.ndarray | None:
    """The chunk embeddings if this process or an earlier one built them; never builds."""
    store = _index_store()
    with _STORE_LOCK:
        if (size, overlap) not in store:
            emb = rag.load_index(size, overlap)
            if emb is None:
                return None
            store[(size, overlap)] = emb
        return store[(size, overlap)]


def index_job(size: int, overlap: int) -> np.ndarray | None:
    """The index, or a start button (with estimate, progress and Stop) to build it."""
    emb = available_index(size, overlap)
    if emb is not None:
        return emb
    n = len(rag.corpus_chunks(size, overlap))
    not_kept = rag.index_not_kept_reason(size, overlap)

    def work(report) -> np.ndarray:
        built = rag.build_index(get_encoder(), size, overlap, report)
        with _STORE_LOCK:
            _index_store()[(size, overlap)] = built
        return built

    where = (
        "and on disk for the next start"
        if not_kept is None
        else f"but not on disk: the app's cache folder cannot be written ({not_kept}), so "
        "every restart of the server builds it again"
    )
    return run_job(
        ("rag", "index", size, overlap),
        work,
        start_label=f"Embed the {n:,} chunks with MiniLM",
        estimate_s=rag.embed_estimate_s(n, size),
        caps=f"Once per chunk setting: the index is kept in memory for every learner {where}. "
        "The estimate counts how busy the server is.",
        rerun_label=None,
    )


def note_if_not_kept(size: int, overlap: int) -> None:
    """One sentence under a ready index that could not be saved for the next start."""
    if rag.index_file(size, overlap).is_file() or available_index(size, overlap) is None:
        return
    reason = rag.index_not_kept_reason(size, overlap)
    if reason is not None:
        st.caption(
            "This index is kept in memory only: the app's cache folder cannot be written "
            f"({reason}), so a restart of the server builds it again."
        )


# --- cached computations ---------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def cached_query_vector(question: str) -> np.ndarray:
    return rag.embed_texts(get_encoder(), [question])[0]


def cached_retrieval(size: int, overlap: int, question: str, dense: bool) -> Retrieval:
    emb = available_index(size, overlap) if dense else None
    vec = cached_query_vector(question) if emb is not None else None
    return rag.retrieve(question, rag.corpus_bm25(size, overlap), emb, vec)


@st.cache_data(show_spinner="Measuring recall@k on the labelled questions…", max_entries=32)
def cached_recall(model_id: str, size: int, overlap: int, dense: bool) -> RecallResult:
    tok = load_model(model_id).tokenizer
    emb = available_index(size, overlap) if dense else None
    return rag.evaluate_recall(
        size,
        overlap,
        emb,
        get_encoder() if emb is not None else None,
        lambda t: len(tok(t, add_special_tokens=False)["input_ids"]),
    )


def corpus_caption() -> None:
    """Where the documents come from, and their licence."""
    st.caption(f"Documents: {corpus_source()}.")


# --- frames and charts -----------------------------------------------------------------------


def retrieval_frame(r: Retrieval, chunks: Sequence[Chunk], k: int) -> pd.DataFrame:
    """One row per (chunk in any method's top k, method): rank and score."""
    ids = sorted({int(i) for o in r.orders.values() for i in o[:k]})
    rows = []
    for m, order in r.orders.items():
        rank = {int(c): n + 1 for n, c in enumerate(order)}
        for i in ids:
            c = chunks[i]
            rows.append(
                {
                    "chunk": f"#{i} {c.topic} [{c.start}:{c.end}]",
                    "id": i,
                    "method": METHOD_LABELS[m],
                    "rank": rank[i],
                    "score": float(r.scores[m][i]),
                    "in top k": rank[i] <= k,
                }
            )
    return pd.DataFrame(rows)


def rank_chart(df: pd.DataFrame) -> alt.Chart:
    """Chunks (rows) by method (columns): the rank each method gives; top-k cells coloured."""
    # the text ink follows the cell's colour on the same reversed log scale (white on yellow,
    # the best ranks, did not read)
    lo, hi = float(df["rank"].min()), float(df["rank"].max())
    t = np.log(df["rank"].to_numpy(dtype=float) / lo) / (np.log(hi / lo) if hi > lo else 1.0)
    df = df.assign(ink=ink_for(1.0 - t, "viridis", (0.0, 1.0)))
    base = alt.Chart(df).encode(
        y=alt.Y("chunk:N", title=None, sort=alt.SortField("id"), axis=alt.Axis(labelLimit=260)),
        x=alt.X(
            "method:N",
            title=None,
            # every method named (cut with '…' in a narrow column), none hidden
            axis=alt.Axis(
                orient="top",
                labelAngle=0,
                labelAlign="center",  # the theme's default started each name at its band's centre
                labelOverlap=False,
                labelLimit=alt.expr("bandwidth('x') - 8"),  # each name within its column
            ),
            sort=list(METHOD_LABELS.values()),
        ),
        tooltip=["chunk", "method", "rank", alt.Tooltip("score:Q", format=".4f")],
    )
    cells = base.mark_rect(stroke="gray", strokeOpacity=0.3).encode(
        color=alt.Color(
            "rank:Q",
            title="rank",
            scale=alt.Scale(scheme="viridis", reverse=True, type="log"),
            # every cell prints its rank; the gradient legend, taller than three rows of cells,
            # was cut at its lowest label
            legend=None,
        ),
        opacity=alt.condition(alt.datum["in top k"], alt.value(1.0), alt.value(0.25)),
    )
    text = base.mark_text(fontWeight="bold").encode(
        text=alt.Text("rank:Q"),
        color=alt.ColorValue(
            value="gray",  # faded cells outside the top k
            condition=[
                {"test": f"datum['in top k'] && datum.ink == '{LIGHT_INK}'", "value": LIGHT_INK},
                {"test": "datum['in top k']", "value": DARK_INK},
            ],
        ),
    )
    return (cells + text).properties(height=alt.Step(22))


def recall_frame(result: RecallResult) -> pd.DataFrame:
    rows = []
    for m, values in result.recall.items():
        for k, v, tokens in zip(result.ks, values, result.context_tokens[m]):
            rows.append(
                {"method": METHOD_LABELS[m], "k": k, "recall@k": v, "context tokens": round(tokens)}
            )
    return pd.DataFrame(rows)


def recall_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per k, one column per method: its recall@k and the context tokens its own top k
    cost, in one cell (two columns per method ran past a projector's width, the last hidden)."""
    wide = df.pivot_table(index="k", columns="method", values=["recall@k", "context tokens"])
    methods = list(dict.fromkeys(df["method"]))
    out = pd.DataFrame(index=wide.index)
    for m in methods:
        out[m] = [
            f"{r:.0%} · {round(t):,} tokens"
            for r, t in zip(wide[("recall@k", m)], wide[("context tokens", m)], strict=True)
        ]
    return out.reset_index()


def recall_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "k:Q",
                title="k (chunks put in the prompt)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(values=sorted(df["k"].unique().tolist())),
            ),
            y=alt.Y(
                "recall@k:Q",
                title="recall@k (share of questions)",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color(
                "method:N",
                title=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(df["method"].unique())),
            ),
            tooltip=["method", "k", alt.Tooltip("recall@k:Q", format=".0%"), "context tokens"],
        )
        .properties(height=260)
    )


MARK = "background: rgba(255, 159, 64, 0.35); color: inherit; border-radius: 2px;"


def chunks_html(chunks: Sequence[Chunk], ids: Sequence[int], overlap: int) -> str:
    """Consecutive chunks of one topic; text shared with the neighbour chunk highlighted.

    The text is the shipped documentation, escaped anyway; colours are translucent so the
    block reads in the light and the dark theme alike.
    """
    parts = []
    for i in ids:
        c = chunks[i]
        head = overlap if i > 0 and chunks[i - 1].topic == c.topic else 0
        nxt = i + 1 < len(chunks) and chunks[i + 1].topic == c.topic
        tail = max(0, c.end - chunks[i + 1].start) if nxt else 0
        tail = min(tail, len(c.text) - head)
        body = c.text[head : len(c.text) - tail] if tail else c.text[head:]
        parts.append(
            f"<div style='margin-bottom:0.6rem'><b>#{i}</b> · {html.escape(c.topic)} · "
            f"characters {c.start}-{c.end}<pre style='white-space:pre-wrap; margin:0.2rem 0;"
            f" font-size:0.8rem'>"
            f"<span style='{MARK}'>{html.escape(c.text[:head])}</span>{html.escape(body)}"
            f"<span style='{MARK}'>{html.escape(c.text[len(c.text) - tail :] if tail else '')}"
            "</span></pre></div>"
        )
    return "".join(parts)


# --- answers ---------------------------------------------------------------------------------


def answers_estimate_s(prompt_tokens: int) -> float:
    """Two greedy answers at about 19 tokens/s and their prompts' prefill, idle machine."""
    return 2 * rag.ANSWER_TOKENS / 19 + prompt_tokens / 400


def answers_job(
    model_id: str, question: str, context: tuple[str, ...], key: tuple, prompt_tokens: int
):
    """The answer without and with the retrieved chunks: two greedy generations."""

    def work(report):
        lm = load_model(model_id)
        report(0.05, "Answering without retrieval…")
        plain = rag.answer(lm, question, ())
        report(0.5, "Answering with the retrieved chunks…")
        grounded = rag.answer(lm, question, context)
        report(1.0, "Done")
        return plain, grounded

    return run_job(
        ("rag", "answers", model_id, question, context, *key),
        work,
        start_label="Answer with and without retrieval",
        estimate_s=answers_estimate_s(prompt_tokens),
        caps=f"Greedy, at most {rag.ANSWER_TOKENS} new tokens per answer, through the "
        "one generation "
        "door.",
        rerun_label=None,
    )


def recall_section(model_id: str, size: int, overlap: int, has_index: bool) -> None:
    """Recall@k of every method on the labelled questions: chart, table, what counts."""
    result = cached_recall(model_id, size, overlap, has_index)
    rdf = recall_frame(result)
    draw_chart(recall_chart(rdf))
    st.dataframe(recall_table(rdf), hide_index=True, width="stretch")
    st.caption(
        "A question counts as retrieved at k when any of its gold chunks (those overlapping a "
        "phrase written for it that occurs verbatim in the documents) is in the top k. "
        f"Context tokens: the {model_id.split('/')[-1]} tokens of each method's own top-k "
        "chunks, mean over the questions."
        + ("" if has_index else " Dense and hybrid appear once the index is built.")
    )


def answers_section(out, qs, question: str, k: int) -> None:
    """The answers without and with retrieval, and whether each contains the gold answer."""
    plain, grounded = out
    a1, a2 = st.columns(2)
    a1.markdown("**Without retrieval**")
    a1.text(plain.text or "(empty answer)")
    a2.markdown(f"**With the top {k} chunks**")
    a2.text(grounded.text or "(empty answer)")
    gold = next((q for q in qs if q.question == question), None)
    if gold is not None:
        st.caption(
            f"Does the answer contain “{gold.answer}”? Without: "
            f"{'yes' if rag.contains_answer(plain.text, gold.answer) else 'no'}; with: "
            f"{'yes' if rag.contains_answer(grounded.text, gold.answer) else 'no'}."
        )


def retrieval_section(r, chunks, k: int) -> None:
    """Which chunks each method puts in its top k: the rank chart and the score table."""
    df = retrieval_frame(r, chunks, k)
    # the chart, then its scores under it: the score table in a side column hid its columns
    draw_chart(rank_chart(df))
    st.caption(
        f"Every chunk that any method puts in its top {k}; the number is its rank among all "
        f"{len(chunks):,} chunks for that method (faded: outside that method's top {k})."
    )
    st.dataframe(
        df.pivot_table(index="chunk", columns="method", values="score").round(4), width="stretch"
    )
    st.caption(
        "Scores. Dense: cosine similarity. BM25: sum over the question's words of idf × "
        "saturated term frequency. Hybrid: reciprocal rank fusion (Go deeper, above)."
    )
