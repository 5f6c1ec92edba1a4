"""21 RAG: chunks retrieved by several methods, the assembled prompt, answers with and without it, recall@k."""

from __future__ import annotations

import streamlit as st

from components import rag as view
from components.frame import intro, page_frame, show_code
from components.models import current_model_id
from components.preamble import model_page
from components.questions import check_yourself
from core import rag

page_frame()

with intro():
    st.markdown(
        "A small model does not know most facts, and a big one cannot know your documents. "
        "**Retrieval-augmented generation** looks the facts up first: the documents (here, "
        f"{len(rag.pydoc_topics())} topics of Python's own documentation) are cut into overlapping "
        "**chunks**; a question is compared with every chunk, either by meaning (**dense**: MiniLM "
        "embeddings, cosine similarity) or by shared rare words (**BM25**), or both (**hybrid**, by "
        "reciprocal rank fusion); the top-k chunks are pasted into the prompt, and the model answers "
        "from them. Each step can fail on its own: measure it below."
    )
view.corpus_caption()
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
options = [q.question for q in qs] + [OWN]
pick = c0.selectbox("Question", options, index=options.index(rag.DEFAULT_QUESTION), key="rag.pick")
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
view.note_if_not_kept(size, overlap)
r = view.cached_retrieval(size, overlap, question, emb is not None)
best = list(r.orders)[-1]  # hybrid when the index exists, else BM25
st.subheader("Which chunks each method retrieves")
view.retrieval_section(r, chunks, k)

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
lm, _ = model_page(prompt=False)
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
    view.answers_section(out, qs, question, k)

st.subheader(f"Recall@k on {len(qs)} labelled questions")
view.recall_section(model_id, size, overlap, emb is not None)
show_code(
    rag.chunk_text,
    rag.embed_texts,
    rag.bm25_index,
    rag.bm25_scores,
    rag.rrf_scores,
    rag.recall_at_k,
)

check_yourself()
