"""Embeddings: the LM's input vectors for words, their neighbours, analogies, projections to 2-D,
MiniLM sentence vectors, and one word's vector in different contexts, layer by layer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.models import heavy_work

MAX_GROUPS = 8
MAX_WORDS_PER_GROUP = 16
MAX_WORD_CHARS = 40
MAX_SENTENCES = 12
MAX_SENTENCE_TOKENS = 64
UMAP_SEED = 42

DEFAULT_GROUPS = (
    "animals: cat, dog, horse, cow, lion, tiger, rabbit, sheep\n"
    "countries: France, Germany, Italy, Spain, Japan, China, Brazil, Canada\n"
    "numbers: one, two, three, four, five, six, seven, eight\n"
    "colours: red, blue, green, yellow, purple, orange, black, white\n"
    "verbs: run, walk, eat, sleep, write, read, sing, swim"
)


def parse_groups(text: str) -> list[tuple[str, list[str]]]:
    """'group: w1, w2' per line -> [(group, [words])], capped and de-duplicated."""
    groups: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for n, line in enumerate((text or "").splitlines()):
        name, _, rest = line.partition(":") if ":" in line else (f"group {n + 1}", "", line)
        words = []
        for w in re.split(r"[,;]", rest):
            w = w.strip()[:MAX_WORD_CHARS]
            if w and w not in seen and len(words) < MAX_WORDS_PER_GROUP:
                seen.add(w)
                words.append(w)
        if words:
            groups.append((name.strip()[:MAX_WORD_CHARS] or f"group {n + 1}", words))
        if len(groups) == MAX_GROUPS:
            break
    return groups


def embedding_matrix(model: Any) -> np.ndarray:
    """The LM's input embedding table: (vocab, d)."""
    return model.get_input_embeddings().weight.detach().float().numpy()


def word_ids(tokenizer: Any, word: str) -> tuple[int, ...]:
    """A word as it appears mid-sentence (with its leading space), as token ids."""
    ids = tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"]
    return tuple(int(i) for i in ids) or tuple(
        tokenizer(word, add_special_tokens=False)["input_ids"]
    )


def word_vector(table: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    """A word's input vector: its token's row, or the mean of its tokens' rows."""
    return table[list(ids)].mean(axis=0)  # (d,)


def unit_rows(table: np.ndarray) -> np.ndarray:
    return table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Neighbour:
    token_id: int
    cosine: float


def nearest_neighbours(
    table: np.ndarray,
    vector: np.ndarray,
    k: int = 10,
    exclude: tuple[int, ...] = (),
    norms: np.ndarray | None = None,
) -> list[Neighbour]:
    """The k rows of `table` with the highest cosine to `vector`. Passing the rows' lengths
    (`norms`) saves keeping a normalised copy of a 100 MB embedding table in memory."""
    if norms is None:
        norms = np.linalg.norm(table, axis=1)
    v = vector / max(float(np.linalg.norm(vector)), 1e-12)
    cos = (table @ v) / np.maximum(norms, 1e-12)  # (vocab,)
    if exclude:
        cos = cos.copy()
        cos[list(exclude)] = -np.inf
    top = np.argpartition(-cos, min(k, len(cos) - 1))[:k]
    top = top[np.argsort(-cos[top])]
    return [Neighbour(int(i), float(cos[i])) for i in top]


def analogy_vector(
    table: np.ndarray, a: tuple[int, ...], b: tuple[int, ...], c: tuple[int, ...]
) -> np.ndarray:
    """'a is to b as c is to ?' -> b - a + c."""
    return word_vector(table, b) - word_vector(table, a) + word_vector(table, c)


@dataclass(frozen=True)
class Projection:
    xy: np.ndarray  # (n, 2)
    explained: tuple[float, float]  # PCA: share of variance per axis; UMAP: (nan, nan)


def pca_2d(x: np.ndarray) -> Projection:
    """The two directions of largest variance, by SVD of the centred data."""
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    xy = xc @ vt[:2].T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    var = s**2 / max(float((s**2).sum()), 1e-12)
    var = np.pad(var, (0, 2))[:2]
    return Projection(xy, (float(var[0]), float(var[1])))


def umap_2d(x: np.ndarray, seed: int = UMAP_SEED) -> Projection:
    """UMAP with a fixed seed (the import compiles numba code: tens of seconds the first time)."""
    import umap  # lazy: importing it alone takes about 12 s

    from core.models import freeze_after_import

    freeze_after_import("umap")  # its ~100k objects would add ~80 ms to every rerun's collection

    n_neighbors = max(2, min(15, x.shape[0] - 1))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        metric="cosine",
        random_state=seed,
        init="random" if x.shape[0] < 6 else "spectral",
    )
    return Projection(np.asarray(reducer.fit_transform(x)), (float("nan"), float("nan")))


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    u = unit_rows(np.asarray(x, dtype=np.float64))
    return u @ u.T  # (n, n)


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over the distinct pairs of rows of x (n, d): 1 when all point the same way."""
    sim = cosine_matrix(x)
    off_diagonal = ~np.eye(sim.shape[0], dtype=bool)
    return float(sim[off_diagonal].mean()) if off_diagonal.any() else 1.0


def agreement_by_layer(contextual: np.ndarray) -> np.ndarray:
    """For (sentences, layers+1, d) vectors of one word: mean pairwise cosine at each layer."""
    return np.array([mean_pairwise_cosine(contextual[:, i]) for i in range(contextual.shape[1])])


def text_lines(text: str, max_lines: int = MAX_SENTENCES, max_chars: int = 300) -> tuple[str, ...]:
    """The non-blank lines of a text box, stripped, each cut to max_chars, at most max_lines."""
    return tuple(line.strip()[:max_chars] for line in text.splitlines() if line.strip())[:max_lines]


def sentence_embeddings(encoder: Any, sentences: list[str]) -> np.ndarray:
    """MiniLM sentence vectors: mean of token vectors over the mask, L2-normalised: (n, 384)."""
    tok = encoder.tokenizer(
        sentences,
        padding=True,
        truncation=True,
        max_length=MAX_SENTENCE_TOKENS,
        return_tensors="pt",
    )
    with heavy_work(), torch.inference_mode():
        hidden = encoder.model(**tok).last_hidden_state  # (n, T, d)
    mask = tok["attention_mask"][..., None].float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@dataclass(frozen=True)
class WordInContext:
    sentences: tuple[str, ...]  # the sentences where the word was found
    missing: tuple[str, ...]  # the sentences where it was not
    static: np.ndarray  # (n, d) input-embedding rows: the same for every sentence
    contextual: np.ndarray  # (n, layers+1, d) hidden states at the word, layer by layer


def _word_span(tokenizer: Any, sentence: str, word: str) -> list[int] | None:
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", sentence, flags=re.IGNORECASE)
    if not match:
        return None
    enc = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    span = [
        i
        for i, (s, e) in enumerate(enc["offset_mapping"][:MAX_SENTENCE_TOKENS])
        if s < match.end() and e > match.start()
    ]
    return span or None


def word_in_context(lm: Any, word: str, sentences: list[str]) -> WordInContext:
    """The word's vector in each sentence: static (input table) and after every block."""
    table = lm.model.get_input_embeddings().weight
    found, missing, static, contextual = [], [], [], []
    for sentence in sentences[:MAX_SENTENCES]:
        span = _word_span(lm.tokenizer, sentence, word)
        if span is None:
            missing.append(sentence)
            continue
        ids = lm.tokenizer(sentence, add_special_tokens=False)["input_ids"][:MAX_SENTENCE_TOKENS]
        with heavy_work(), torch.inference_mode():
            out = lm.model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        hs = torch.stack([h[0] for h in out.hidden_states])  # (L+1, T, d)
        found.append(sentence)
        static.append(table[[ids[i] for i in span]].mean(0).detach().float().numpy())
        contextual.append(hs[:, span].mean(1).float().numpy())
    d = table.shape[1]
    n_states = int(lm.model.config.num_hidden_layers) + 1
    return WordInContext(
        tuple(found),
        tuple(missing),
        np.array(static).reshape(-1, d),
        np.array(contextual).reshape(-1, n_states, d),
    )
