"""Retrieval-augmented generation: chunk the documents, embed them, retrieve, assemble, answer.

The corpus is the shipped snapshot of Python's documentation (`core.shared.corpus.pydoc_topics`).
Dense retrieval embeds chunks with MiniLM the way sentence-transformers does (mean pooling over
the attention mask, then L2 normalisation), so a dot product is the cosine. Sparse retrieval is
BM25 (Lucene variant, bm25s's defaults) in a few lines of numpy/scipy; the hybrid fuses both
rankings by reciprocal rank fusion. Recall@k is measured on hand-written questions whose gold
phrase occurs verbatim in the corpus (`data/rag_questions.json`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from core.runtime.generation import GREEDY, DecodingSettings, generate_stream
from core.runtime.models import LoadedEncoder, LoadedModel, cache_root, heavy_work
from core.shared.corpus import DATA, pydoc_topics

Report = Callable[..., None]
QUESTIONS_FILE = DATA / "rag_questions.json"
ENCODER_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers
EMBED_BATCH = 32
RRF_K = 60  # the constant of Cormack et al. (2009)
ANSWER_TOKENS = 48
INDEX_VERSION = 1  # bump to invalidate every embedding file on disk


# --- chunks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    id: int  # position in the chunk list
    topic: str
    start: int  # character offsets in the topic's text
    end: int
    text: str


def chunk_text(topic: str, text: str, size: int, overlap: int, first_id: int = 0) -> list[Chunk]:
    """Windows of `size` characters, each starting `size - overlap` after the previous one."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    step = size - overlap
    out: list[Chunk] = []
    start = 0
    while True:
        end = min(start + size, len(text))
        out.append(Chunk(first_id + len(out), topic, start, end, text[start:end]))
        if end >= len(text):
            return out
        start += step


@lru_cache(maxsize=8)  # bounded: eight chunk settings of one 1 MB corpus, text only
def corpus_chunks(size: int, overlap: int) -> tuple[Chunk, ...]:
    """Every topic of the shipped documentation, chunked; chunks never cross two topics."""
    chunks: list[Chunk] = []
    for topic, text in pydoc_topics().items():
        chunks += chunk_text(topic, text, size, overlap, first_id=len(chunks))
    return tuple(chunks)


# --- dense: MiniLM embeddings ----------------------------------------------------------------


def embed_texts(
    enc: LoadedEncoder, texts: Sequence[str], report: Report | None = None, batch: int = EMBED_BATCH
) -> np.ndarray:
    """Sentence embeddings as sentence-transformers computes them: masked mean, then L2 norm."""
    out = np.zeros((len(texts), enc.model.config.hidden_size), dtype=np.float32)  # (n, 384)
    for i in range(0, len(texts), batch):
        part = list(texts[i : i + batch])
        tok = enc.tokenizer(
            part, padding=True, truncation=True, max_length=ENCODER_MAX_TOKENS, return_tensors="pt"
        )
        with heavy_work(), torch.inference_mode():
            hidden = enc.model(**tok).last_hidden_state  # (b, T, 384)
        mask = tok["attention_mask"].unsqueeze(-1).float()  # (b, T, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out[i : i + len(part)] = torch.nn.functional.normalize(mean, dim=-1).numpy()
        if report is not None:
            done = i + len(part)
            report(done / len(texts), f"Embedded {done:,} of {len(texts):,} chunks")
    return out


def index_file(size: int, overlap: int) -> Path:
    """Where the embeddings of one chunking live on disk, keyed by the corpus's own hash."""
    digest = hashlib.sha256(json.dumps(pydoc_topics(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "rag" / f"minilm-v{INDEX_VERSION}-{digest}-{size}-{overlap}.npy"


def load_index(size: int, overlap: int) -> np.ndarray | None:
    """The saved embeddings for this chunking, or None when missing or not the right shape."""
    path = index_file(size, overlap)
    try:
        emb = np.load(path)
    except (OSError, ValueError):
        return None
    if emb.shape[0] != len(corpus_chunks(size, overlap)) or not np.isfinite(emb).all():
        return None
    return emb


def build_index(
    enc: LoadedEncoder, size: int, overlap: int, report: Report | None = None
) -> np.ndarray:
    """Embed every chunk (about 35-45 s on two cores) and save it, written aside then renamed."""
    emb = embed_texts(enc, [c.text for c in corpus_chunks(size, overlap)], report)
    path = index_file(size, overlap)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: the index still serves this process from memory
    return emb


def dense_scores(emb: np.ndarray, query_vec: np.ndarray) -> np.ndarray:
    return emb @ query_vec  # (n,): unit vectors, so these are cosines


# --- sparse: BM25 ----------------------------------------------------------------------------

TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern


# bm25s's English stopword list (bm25s.stopwords.STOPWORDS_EN; a test checks they are equal).
# Copied rather than imported: importing bm25s costs the server about 56 MB for 33 words.
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)


def _stopwords() -> frozenset[str]:
    return STOPWORDS_EN


def bm25_tokens(text: str) -> list[str]:
    """Lowercase words of two or more characters, English stopwords dropped (as bm25s does)."""
    stop = _stopwords()
    return [w for w in TOKEN_RE.findall(text.lower()) if w not in stop]


@dataclass(frozen=True)
class BM25Index:
    vocab: dict[str, int]
    weights: sp.csc_matrix  # (n_docs, n_terms): idf * saturated term frequency
    k1: float
    b: float


def bm25_index(docs: Sequence[str], k1: float = 1.5, b: float = 0.75) -> BM25Index:
    """BM25, Lucene variant: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf / (tf + k1 * norm)."""
    tokens = [bm25_tokens(d) for d in docs]
    vocab: dict[str, int] = {}
    rows, cols, tfs = [], [], []
    for d, words in enumerate(tokens):
        counts: dict[int, int] = {}
        for w in words:
            t = vocab.setdefault(w, len(vocab))
            counts[t] = counts.get(t, 0) + 1
        rows += [d] * len(counts)
        cols += list(counts)
        tfs += list(counts.values())
    n = len(docs)
    tf = np.array(tfs, dtype=np.float64)
    lengths = np.array([len(w) for w in tokens], dtype=np.float64)
    avg = lengths.mean() if n else 1.0
    df = np.bincount(cols, minlength=len(vocab)).astype(np.float64)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    norm = k1 * (1 - b + b * lengths[rows] / max(avg, 1e-9))
    w = idf[cols] * tf / (tf + norm)
    weights = sp.csc_matrix((w, (rows, cols)), shape=(n, len(vocab)))
    return BM25Index(vocab, weights, k1, b)


def bm25_scores(index: BM25Index, query: str) -> np.ndarray:
    """Sum over the query's words (a repeated word counts again, as in bm25s) of their weights."""
    counts: dict[int, int] = {}
    for w in bm25_tokens(query):
        if w in index.vocab:
            counts[index.vocab[w]] = counts.get(index.vocab[w], 0) + 1
    if not counts:
        return np.zeros(index.weights.shape[0])
    ids = sorted(counts)
    return index.weights[:, ids] @ np.array([counts[i] for i in ids], dtype=np.float64)


@lru_cache(maxsize=4)  # bounded: four sparse BM25 indexes of the same corpus
def corpus_bm25(size: int, overlap: int) -> BM25Index:
    return bm25_index([c.text for c in corpus_chunks(size, overlap)])


# --- fusion and ranking ----------------------------------------------------------------------


def ranking(scores: np.ndarray) -> np.ndarray:
    """Document ids, best first (ties broken by id, so every method ranks deterministically)."""
    return np.lexsort((np.arange(len(scores)), -scores))


def rrf_scores(rankings: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion: sum over methods of 1 / (k + rank), rank counted from 1."""
    n = len(rankings[0])
    out = np.zeros(n)
    for order in rankings:
        ranks = np.empty(n)
        ranks[order] = np.arange(1, n + 1)
        out += 1.0 / (k + ranks)
    return out


METHODS = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class Retrieval:
    query: str
    scores: dict[str, np.ndarray]  # method -> (n_chunks,) score
    orders: dict[str, np.ndarray]  # method -> chunk ids best first


def retrieve(
    query: str, bm25: BM25Index, emb: np.ndarray | None, query_vec: np.ndarray | None
) -> Retrieval:
    """Scores and rankings of every chunk by BM25 and, when an index is given, dense and hybrid."""
    scores = {"bm25": bm25_scores(bm25, query)}
    if emb is not None and query_vec is not None:
        scores["dense"] = dense_scores(emb, query_vec)
    orders = {m: ranking(s) for m, s in scores.items()}
    if "dense" in orders:
        scores["hybrid"] = rrf_scores([orders["dense"], orders["bm25"]])
        orders["hybrid"] = ranking(scores["hybrid"])
    return Retrieval(query, scores, orders)


# --- labelled questions and recall@k ----------------------------------------------------------


@dataclass(frozen=True)
class Question:
    question: str
    topic: str
    gold: str  # occurs verbatim in the corpus
    answer: str  # a short string a right answer contains


@lru_cache(maxsize=1)  # a parsed data file: a per-process constant
def labelled_questions() -> tuple[Question, ...]:
    items = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))["questions"]
    return tuple(Question(**q) for q in items)


def gold_chunks(chunks: Sequence[Chunk], phrase: str) -> frozenset[int]:
    """Chunks that overlap any occurrence of the phrase: valid at every chunk size."""
    spans = [
        (topic, m.start(), m.start() + len(phrase))
        for topic, text in pydoc_topics().items()
        for m in re.finditer(re.escape(phrase), text)
    ]
    return frozenset(
        c.id for c in chunks for t, s, e in spans if c.topic == t and c.start < e and s < c.end
    )


@dataclass(frozen=True)
class RecallResult:
    size: int
    overlap: int
    ks: tuple[int, ...]
    recall: dict[str, tuple[float, ...]]  # method -> recall@k for each k
    first_gold_rank: dict[str, tuple[int, ...]]  # method -> rank (1-based) per question
    context_tokens: dict[str, tuple[float, ...]]  # method -> mean LM tokens of its top k, per k


def recall_at_k(
    orders: Sequence[np.ndarray], golds: Sequence[frozenset[int]], ks: Sequence[int]
) -> tuple[float, ...]:
    """Share of questions with at least one gold chunk among the top k."""
    hits = [
        [bool(golds[q] & {int(i) for i in order[:k]}) for q, order in enumerate(orders)] for k in ks
    ]
    return tuple(sum(h) / max(len(h), 1) for h in hits)


def first_gold_rank(order: np.ndarray, gold: frozenset[int]) -> int:
    for r, i in enumerate(order, start=1):
        if int(i) in gold:
            return r
    return len(order) + 1


def evaluate_recall(
    size: int,
    overlap: int,
    emb: np.ndarray | None,
    enc: LoadedEncoder | None,
    count_tokens: Callable[[str], int],
    ks: Sequence[int] = (1, 3, 5, 10),
) -> RecallResult:
    """Recall@k of every method over the labelled questions, with the context each k costs.

    Without an embedding index (`emb` None) only BM25 is measured.
    """
    chunks = corpus_chunks(size, overlap)
    qs = labelled_questions()
    golds = [gold_chunks(chunks, q.gold) for q in qs]
    dense = emb is not None and enc is not None
    qvecs = embed_texts(enc, [q.question for q in qs]) if dense else [None] * len(qs)
    bm25 = corpus_bm25(size, overlap)
    results = [retrieve(q.question, bm25, emb if dense else None, v) for q, v in zip(qs, qvecs)]
    recall, ranks = {}, {}
    for m in [m for m in METHODS if m in results[0].orders]:
        orders = [r.orders[m] for r in results]
        recall[m] = recall_at_k(orders, golds, ks)
        ranks[m] = tuple(first_gold_rank(o, g) for o, g in zip(orders, golds))
    lengths: dict[int, int] = {}
    context: dict[str, tuple[float, ...]] = {}
    for m in recall:
        context[m] = tuple(
            float(
                np.mean(
                    [
                        sum(
                            lengths.setdefault(int(i), count_tokens(chunks[int(i)].text))
                            for i in r.orders[m][:k]
                        )
                        for r in results
                    ]
                )
            )
            for k in ks
        )
    return RecallResult(size, overlap, tuple(ks), recall, ranks, context)


# The question the page opens on: measured with SmolLM2-135M-Instruct (greedy, BM25 top 3 of
# 500-character chunks with 50 of overlap), it answers wrongly alone ("n * (n + 1) / 2") and
# rightly with the retrieved chunks ("floor division by 2^n"); on the first question, "What
# happens when the pass statement is executed?", retrieval made the answer worse.
DEFAULT_QUESTION = "How is a right shift by n bits defined?"

# --- prompt and answer -----------------------------------------------------------------------

SYSTEM = (
    "Answer the question in one short sentence. Use the context from the Python "
    "documentation when it helps."
)


def rag_messages(question: str, context: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages: the retrieved chunks, numbered, then the question."""
    if not context:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    body = "\n\n".join(f"[{i + 1}] {c.strip()}" for i, c in enumerate(context))
    user = f"Context:\n{body}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def neutralise_special_tokens(text: str, tokenizer: object) -> str:
    """Typed '<|im_start|>' stays text: a question must not open a new chat turn."""
    for tok in getattr(tokenizer, "all_special_tokens", []) or []:
        if len(tok) > 1 and tok in text:
            text = text.replace(tok, tok[0] + " " + tok[1:])
    return text


def prompt_ids(lm: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    messages = [
        {**m, "content": neutralise_special_tokens(m["content"], lm.tokenizer)} for m in messages
    ]
    if getattr(lm.tokenizer, "chat_template", None):
        text = lm.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
    else:  # a base model: plain text with an answer cue
        text = "\n\n".join(m["content"] for m in messages) + "\nAnswer:"
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


def answer(
    lm: LoadedModel,
    question: str,
    context: Sequence[str],
    max_new_tokens: int | None = None,
    settings: DecodingSettings = GREEDY,
) -> Answer:
    """Greedy answer through the one generation door (ANSWER_TOKENS new tokens at most)."""
    ids = prompt_ids(lm, rag_messages(question, context))
    s = replace(settings, max_new_tokens=max_new_tokens or ANSWER_TOKENS)
    steps = list(generate_stream(lm, ids, s))
    out = [st.token_id for st in steps if st.token_id not in _special_ids(lm)]
    text = lm.tokenizer.decode(out, skip_special_tokens=True).strip()
    return Answer(text, len(ids), len(steps), sum(st.seconds for st in steps))


def _special_ids(lm: LoadedModel) -> set[int]:
    return set(getattr(lm.tokenizer, "all_special_ids", []) or [])


def contains_answer(text: str, expected: str) -> bool:
    return expected.lower() in text.lower()


def mean_chunk_chars(size: int, overlap: int) -> float:
    return float(np.mean([len(c.text) for c in corpus_chunks(size, overlap)]))


def embed_estimate_s(n_chunks: int, size: int) -> float:
    """About 27-42 chunks/s on two cores for 300-800 characters (measured); longer is slower."""
    return n_chunks / max(48.0 - size / 30.0, 15.0) + 2.0
