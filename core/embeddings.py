"""Embeddings: the LM's input vectors for words, their neighbours, analogies, projections to 2-D
(PCA, t-SNE, UMAP), MiniLM sentence vectors, and one word's vector in different contexts,
layer by layer.

torch and the model layer are imported inside the functions that run a model: the UMAP helper
process (`core.runtime.worker`) imports this module to run `umap_layout`, and must not pay for
torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_GROUPS = 8
MAX_WORDS_PER_GROUP = 16
MAX_WORD_CHARS = 40
MAX_SENTENCES = 12
MAX_SENTENCE_TOKENS = 64

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


def find_tokens(token_texts: list[str], query: str, limit: int = 30) -> list[int]:
    """Ids of the vocabulary tokens whose text contains `query` (case-insensitive; the text of
    a token is what it decodes to, leading space included): a token equal to the query (with
    or without its leading space) first, then tokens starting with it, then the rest; shorter
    tokens before longer ones within each kind."""
    q = query.strip().lower()
    if not q:
        return []
    found = []
    for i, text in enumerate(token_texts):
        t = text.lower()
        pos = t.find(q)
        if pos < 0:
            continue
        bare = t.strip()
        kind = 0 if bare == q else 1 if bare.startswith(q) else 2
        found.append((kind, len(t), i))
    return [i for _, _, i in sorted(found)[:limit]]


def analogy_vector(
    table: np.ndarray, a: tuple[int, ...], b: tuple[int, ...], c: tuple[int, ...]
) -> np.ndarray:
    """'a is to b as c is to ?' -> b - a + c."""
    return word_vector(table, b) - word_vector(table, a) + word_vector(table, c)


@dataclass(frozen=True)
class Projection:
    xy: np.ndarray  # (n, 2)
    explained: tuple[float, float]  # PCA: share of variance per axis; t-SNE: (nan, nan)


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


EPS = float(np.finfo(np.float64).eps)


def tsne_perplexity(n: int) -> float:
    """About a third of the other points count as neighbours, 30 at most (t-SNE's usual value),
    2 at least; always below n, as t-SNE requires."""
    return float(min(30.0, max(2.0, (n - 1) / 3)))


def conditional_probabilities(d: np.ndarray, perplexity: float, steps: int = 100) -> np.ndarray:
    """p(j | i) proportional to exp(-beta_i d_ij), each row's beta found by bisection so that the
    row's entropy is log(perplexity) nats, every row at once (scikit-learn's search)."""
    n = d.shape[0]
    target = np.log(perplexity)
    beta = np.ones(n)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    off = ~np.eye(n, dtype=bool)
    p = np.zeros_like(d)
    for _ in range(steps):
        p = np.where(off, np.exp(-d * beta[:, None]), 0.0)
        total = np.maximum(p.sum(1), EPS)
        entropy = np.log(total) + beta * (d * p).sum(1) / total
        p /= total[:, None]
        diff = entropy - target
        if np.all(np.abs(diff) <= 1e-5):
            break
        up = diff > 0  # too flat: sharpen (larger beta)
        lo = np.where(up, beta, lo)
        hi = np.where(up, hi, beta)
        beta = np.where(
            up,
            np.where(np.isinf(hi), beta * 2, (beta + hi) / 2),
            np.where(np.isinf(lo), beta / 2, (beta + lo) / 2),
        )
    return p


def joint_probabilities(d: np.ndarray, perplexity: float) -> np.ndarray:
    """t-SNE's symmetric P: (p(j|i) + p(i|j)) / 2n, an (n, n) matrix summing to 1."""
    cond = conditional_probabilities(d.astype(np.float32).astype(np.float64), perplexity)
    p = cond + cond.T
    p /= max(float(p.sum()), EPS)
    np.fill_diagonal(p, 0.0)
    return np.maximum(p, EPS) * ~np.eye(len(p), dtype=bool)


def kl_divergence(p: np.ndarray, y: np.ndarray) -> float:
    """KL(P || Q) of a 2-D map y, Q from a Student-t kernel (t-SNE's cost)."""
    w = 1.0 / (1.0 + ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(w, 0.0)
    q = np.maximum(w / w.sum(), EPS)
    mask = ~np.eye(len(p), dtype=bool)
    return float((p[mask] * np.log(np.maximum(p[mask], EPS) / q[mask])).sum())


def tsne_gradient(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d KL(P || Q) / d y = 4 sum_j (p_ij - q_ij) (1 + |y_i - y_j|^2)^-1 (y_i - y_j): (n, 2)."""
    sq = (y**2).sum(1)
    w = 1.0 / (1.0 + np.maximum(sq[:, None] + sq[None, :] - 2.0 * (y @ y.T), 0.0))
    np.fill_diagonal(w, 0.0)
    q = np.maximum(w / w.sum(), EPS)
    m = (p - q) * w
    return 4.0 * (m.sum(1)[:, None] * y - m @ y)


def tsne_2d(x: np.ndarray, iterations: int = 1000, perplexity: float | None = None) -> Projection:
    """Exact t-SNE with cosine distances, as scikit-learn's `TSNE(method="exact")` runs it: PCA
    start scaled to 1e-4, 250 steps of early exaggeration (P x 12, momentum 0.5), then momentum
    0.8, adaptive gains, learning rate max(n / 48, 50). Deterministic: no random start.
    `perplexity` (default `tsne_perplexity(n)`) is cut to n - 1, as t-SNE requires.

    In numpy, in the server: 0.1 s for the page's 128 words at most, and the code the page
    shows is the code that ran."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        return Projection(pca_2d(x).xy, (float("nan"), float("nan")))
    u = unit_rows(x)
    d = np.clip(1.0 - u @ u.T, 0.0, 2.0)
    perp = tsne_perplexity(n) if perplexity is None else min(float(perplexity), n - 1.0)
    p = joint_probabilities(d, max(perp, 1.0 + 1e-6))
    y = pca_2d(x).xy
    y = y / max(float(np.std(y[:, 0])), EPS) * 1e-4
    update, gains = np.zeros_like(y), np.ones_like(y)
    rate = max(n / 12.0 / 4.0, 50.0)
    for step in range(iterations):
        exaggerated = step < 250
        if step == 250:  # a fresh start of the descent, as scikit-learn's second phase makes
            update, gains = np.zeros_like(y), np.ones_like(y)
        grad = tsne_gradient(p * 12.0 if exaggerated else p, y)
        opposed = update * grad < 0.0  # the step keeps its direction: grow its gain
        gains = np.clip(np.where(opposed, gains + 0.2, gains * 0.8), 0.01, None)
        update = (0.5 if exaggerated else 0.8) * update - rate * gains * grad
        y = y + update
    return Projection(y, (float("nan"), float("nan")))


UMAP_MIN_POINTS = 5  # below this umap-learn's spectral start fails (and a map says little)
UMAP_SEED = 42


def umap_neighbours(n: int, n_neighbors: int) -> int:
    """UMAP's neighbourhood size for n points: at most n - 1, at least 2."""
    return int(min(max(2, n_neighbors), n - 1))


def import_umap() -> Any:
    """umap-learn, with numba told to keep on disk (`NUMBA_CACHE_DIR`) every function it
    compiles. umap-learn marks only some of its functions `cache=True`; the others (the
    neighbour graph, the layout's optimiser) were compiled again in every new process: 10 s of
    CPU per fresh helper on this machine, 0.07 s once cached this way. Only the numba
    decorators' default changes, never the code they compile."""
    import functools
    import sys

    if "umap" not in sys.modules:
        import numba

        def caching(decorator: Any) -> Any:
            if getattr(decorator, "_llm_explorer_caching", False):
                return decorator

            def attempt(make: Any) -> Any:
                try:
                    return make({"cache": True})
                except RuntimeError:  # numba cannot cache this one (no source file): compile
                    return make({})

            @functools.wraps(decorator)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if "cache" in kwargs:
                    return decorator(*args, **kwargs)
                if args and callable(args[0]) and not isinstance(args[0], str):  # bare @njit
                    return attempt(lambda c: decorator(*args, **kwargs, **c))
                return lambda fn: attempt(lambda c: decorator(*args, **kwargs, **c)(fn))

            wrapper._llm_explorer_caching = True  # type: ignore[attr-defined]
            return wrapper

        numba.njit, numba.jit = caching(numba.njit), caching(numba.jit)
    import umap

    return umap


def umap_layout(
    x: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    dims: tuple[int, ...] = (2, 3),
    seed: int = UMAP_SEED,
) -> dict[str, np.ndarray]:
    """umap-learn's UMAP of the rows of x (cosine distances), once per number of dimensions:
    {"d2": (n, 2), "d3": (n, 3)}. With a fixed `random_state` umap-learn runs single-threaded
    and gives the same map every time.

    Runs in the helper process (`core.runtime.worker`), never in the server: importing umap
    brings numba and pynndescent (about 350 MB that a process keeps)."""
    umap = import_umap()

    x = np.asarray(x, dtype=np.float32)
    if len(x) < UMAP_MIN_POINTS:
        raise ValueError(f"UMAP needs at least {UMAP_MIN_POINTS} points, got {len(x)}")
    out = {}
    for dim in dims:
        reducer = umap.UMAP(
            n_neighbors=umap_neighbours(len(x), n_neighbors),
            min_dist=float(min_dist),
            n_components=int(dim),
            metric="cosine",
            random_state=seed,
            n_jobs=1,
        )
        out[f"d{dim}"] = reducer.fit_transform(x).astype(np.float64)
    return out


def kept_k(n: int, k: int = 5) -> int:
    """How many nearest neighbours `neighbours_kept` checks for n points: k, but at most half
    of the others (with 6 points, 5 neighbours are all the others: every map keeps 100 %)."""
    return max(1, min(k, (n - 1) // 2))


def neighbours_kept(x: np.ndarray, xy: np.ndarray, k: int = 5) -> float:
    """Share of each point's k nearest neighbours (cosine, in the full space) that are also among
    its k nearest on the 2-D map (Euclidean): 1 when the map keeps every neighbourhood."""
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return 1.0
    u = unit_rows(np.asarray(x, dtype=np.float64))
    far = -(u @ u.T)  # cosine distance up to a constant: the same order
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(far, np.inf)
    np.fill_diagonal(d2, np.inf)
    high = np.argsort(far, axis=1, kind="stable")[:, :k]
    low = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(high, low, strict=True)]))


@dataclass(frozen=True)
class Maps:
    """t-SNE and UMAP maps of the same points, with the settings actually used (cut to n - 1)
    and each map's share of kept neighbours (`neighbours_kept`), PCA's included."""

    tsne: np.ndarray  # (n, 2)
    umap: np.ndarray | None  # (n, 2); None below UMAP_MIN_POINTS
    perplexity: float
    n_neighbors: int
    min_dist: float
    k: int
    kept: dict[str, float]


def projection_maps(
    x: np.ndarray,
    umap_call: Any,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    perplexity: float = 10.0,
    k: int = 5,
    report: Any = None,
) -> Maps:
    """t-SNE here (numpy, `tsne_2d`) and UMAP through `umap_call(x, n_neighbors, min_dist)`,
    which returns `umap_layout`'s dict (the page passes the helper process; a test passes
    `umap_layout` itself). `report(fraction, text)` follows the progress."""
    report = report or (lambda *a, **kw: None)
    n = len(x)
    perp = min(float(perplexity), n - 1.0)
    report(0.02, "t-SNE (numpy, in the server)")
    tsne = tsne_2d(x, perplexity=perp).xy
    umap2 = None
    nn = umap_neighbours(n, n_neighbors)
    if n >= UMAP_MIN_POINTS:
        report(0.1, "UMAP (umap-learn, in its helper process)")
        got = umap_call(x, nn, float(min_dist))
        umap2 = got["d2"]
    k = kept_k(n, k)
    kept = {"pca": neighbours_kept(x, pca_2d(x).xy, k), "tsne": neighbours_kept(x, tsne, k)}
    if umap2 is not None:
        kept["umap"] = neighbours_kept(x, umap2, k)
    return Maps(tsne, umap2, perp, nn, float(min_dist), k, kept)


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
    import torch

    from core.runtime.models import heavy_work

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
    import torch

    from core.runtime.models import heavy_work

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
