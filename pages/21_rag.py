from __future__ import annotations

import streamlit as st

from components import rag as view
from components.charts import draw_chart
from components.frame import page_frame, show_code
from components.models import current_model_id, get_lm
from components.questions import check_yourself
from core import rag

page_frame(21)

st.markdown(
    "A small model does not know most facts, and a big one cannot know your documents. "
    "**Retrieval-augmented generation** looks the facts up first: the documents (here, "
    f"{len(rag.pydoc_topics())} topics of Python's own documentation) are cut into overlapping "
    "**chunks**; a question is compared with every chunk, either by meaning (**dense**: MiniLM "
    "embeddings, cosine similarity) or by shared rare words (**BM25**), or both (**hybrid**, by "
    "reciprocal rank fusion); the top-k chunks are pasted into the prompt, and the model answers "
    "from them. Each step can fail on its own: measure it below."
)
with st.expander("Go deeper: how the hybrid fuses two rankings"):
    st.markdown(
        "Cosine scores and BM25 scores live on different scales, so the hybrid ignores "
        "the scores and adds up reciprocal ranks (Cormack et al., 2009): a chunk ranked "
        "high by either method rises; one ranked high by both wins."
    )
    st.latex(
        r"\mathrm{RRF}(d) = \sum_{m \in \{\text{dense},\, \text{BM25}\}} "
        r"\frac{1}{60 + \mathrm{rank}_m(d)}"
    )

c0, c1, c2, c3 = st.columns([3, 1, 1, 1])
size = c1.select_slider(
    "Chunk size (chars)", [300, 500, 800], 500, key="rag.size", bind="query-params"
)
overlap = c2.select_slider(
    "Overlap (chars)",
    [0, 25, 50, 80, 100],
    50,
    key="rag.overlap",
    bind="query-params",
    help="Text repeated at the start of the next chunk, "
    "so a sentence cut at a border survives whole in one of the two.",
)
k = c3.slider("Top-k chunks", 1, 8, 3, key="rag.k", bind="query-params")
chunks = rag.corpus_chunks(size, overlap)
qs = rag.labelled_questions()
OWN = "Write your own question…"
pick = c0.selectbox("Question", [q.question for q in qs] + [OWN], key="rag.pick")
question = pick
if pick == OWN:
    typed = st.text_input(
        "Your question",
        key="rag.own",
        max_chars=20_000,
        placeholder="e.g. What does str.strip() remove?",
    )
    question = " ".join(typed.split())[:300]
    if not question:
        st.info("The question is empty; showing the first labelled question instead.")
        question = qs[0].question
    elif len(" ".join(typed.split())) > 300:
        st.info("Only the first 300 characters of the question are used.")

emb = view.available_index(size, overlap)
m1, m2 = st.columns(2)
m1.metric(
    "Chunks", f"{len(chunks):,}", help=f"{size} characters each, {overlap} shared with the next"
)
index_slot = m2.empty()
if emb is None:
    st.markdown("**BM25 works at once; dense and hybrid retrieval need every chunk embedded.**")
    emb = view.index_job(size, overlap)
index_slot.metric(
    "Dense index",
    "ready" if emb is not None else "not built",
    help="MiniLM embeddings of every chunk, 384 numbers each",
)
r = view.cached_retrieval(size, overlap, question, emb is not None)
best = list(r.orders)[-1]  # hybrid when the index exists, else BM25
st.subheader("Which chunks each method retrieves")
df = view.retrieval_frame(r, chunks, k)
g1, g2 = st.columns([3, 2])
draw_chart(view.rank_chart(df), where=g1)
g1.caption(
    f"Every chunk that any method puts in its top {k}; the number is its rank among all "
    f"{len(chunks):,} chunks for that method (faded: outside that method's top {k})."
)
g2.dataframe(
    df.pivot_table(index="chunk", columns="method", values="score").round(4), width="stretch"
)
g2.caption(
    "Scores. Dense: cosine similarity. BM25: sum over the question's words of idf × "
    "saturated term frequency. Hybrid: reciprocal rank fusion (Go deeper, above)."
)

top = [int(i) for i in r.orders[best][:k]]
st.subheader(f"The top {k} chunks by {view.METHOD_LABELS[best]}, overlap highlighted")
first = top[0]
neighbours = [
    i
    for i in (first - 1, first, first + 1)
    if 0 <= i < len(chunks) and chunks[i].topic == chunks[first].topic
]
st.html(view.chunks_html(chunks, neighbours, overlap))
st.caption(
    f"Chunk #{first} with its neighbours in the same topic: the highlighted text is shared "
    "with the chunk before or after it."
)

context = tuple(chunks[i].text for i in top)
model_id = current_model_id()
lm = get_lm()
ids_with = rag.prompt_ids(lm, rag.rag_messages(question, context))
ids_without = rag.prompt_ids(lm, rag.rag_messages(question, ()))
st.subheader("The assembled prompt and the answers")
p1, p2 = st.columns(2)
p1.metric("Prompt with retrieval", f"{len(ids_with):,} tokens")
p2.metric(
    "Without",
    f"{len(ids_without):,} tokens",
    delta=f"{len(ids_without) - len(ids_with):+,}",
    delta_color="off",
)
with st.expander("The prompt the model reads"):
    st.code(lm.tokenizer.decode(ids_with), language=None, wrap_lines=True)
out = view.answers_job(model_id, question, context, (size, overlap, k, best), len(ids_with))
if out is not None:
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

st.subheader(f"Recall@k on {len(qs)} labelled questions")
result = view.cached_recall(model_id, size, overlap, emb is not None)
rdf = view.recall_frame(result)
draw_chart(view.recall_chart(rdf))
st.dataframe(
    rdf.pivot_table(
        index=["k", "context tokens"], columns="method", values="recall@k"
    ).style.format("{:.0%}"),
    width="stretch",
)
st.caption(
    "A question counts as retrieved at k when any of its gold chunks (those overlapping a "
    "phrase written for it that occurs verbatim in the documents) is in the top k. "
    "Context tokens: the SmolLM2 tokens of the top-k chunks, mean over the questions."
    + ("" if emb is not None else " Dense and hybrid appear once the index is built.")
)
show_code(
    rag.chunk_text,
    rag.embed_texts,
    rag.bm25_index,
    rag.bm25_scores,
    rag.rrf_scores,
    rag.recall_at_k,
)

check_yourself()
