"""Model-based filtering: the selected LM and a character n-gram model score the same prefix
of a few documents of each kind."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.pretraining_data.corpus import Doc


@dataclass(frozen=True)
class CharNgram:
    """Add-k smoothed character n-gram model: p(c | previous n-1 characters)."""

    order: int
    k: float
    vocab: frozenset[str]
    counts: dict[str, Counter]  # context -> next-character counts

    def prob(self, context: str, char: str) -> float:
        ctx = context[-(self.order - 1) :] if self.order > 1 else ""
        seen = self.counts.get(ctx)
        v = len(self.vocab) + 1  # +1: one shared slot for characters never seen in training
        n, total = (seen[char], sum(seen.values())) if seen else (0, 0)
        return (n + self.k) / (total + self.k * v)


def train_char_ngram(texts: Sequence[str], order: int = 4, k: float = 0.05) -> CharNgram:
    counts: dict[str, Counter] = {}
    pad = "\x02" * (order - 1)
    for text in texts:
        s = pad + text
        for i in range(order - 1, len(s)):
            counts.setdefault(s[i - order + 1 : i], Counter())[s[i]] += 1
    vocab = frozenset(c for text in texts for c in text) | {"\x02"}
    return CharNgram(order, k, vocab, counts)


def char_perplexity(model: CharNgram, text: str) -> float:
    """exp(mean -ln p(char | context)) per character."""
    if not text:
        return float("nan")
    s = "\x02" * (model.order - 1) + text
    nll = [-math.log(model.prob(s[:i], s[i])) for i in range(model.order - 1, len(s))]
    return math.exp(sum(nll) / len(nll))


@dataclass(frozen=True)
class ScoredDoc:
    doc_id: int
    kind: str
    prefix: str  # the first max_tokens tokens of the text, decoded: what both models scored
    lm_perplexity: float
    ngram_perplexity: float


@dataclass(frozen=True)
class PerplexityResult:
    rows: tuple[ScoredDoc, ...]
    model_id: str
    max_tokens: int
    ngram_order: int
    ngram_training_docs: int


def perplexity_sample(docs: Sequence[Doc], per_kind: int, seed: int = 0) -> tuple[Doc, ...]:
    """A few documents of each kind (duplicates excluded: they read like their originals)."""
    rng = random.Random(seed)
    out: list[Doc] = []
    for kind in ("clean", "boilerplate", "spam", "foreign", "pii"):
        pool = [d for d in docs if d.kind == kind and (kind != "clean" or d.source == "docs prose")]
        out += rng.sample(pool, min(per_kind, len(pool)))
    return tuple(out)


def lm_prefix_perplexities(
    lm, texts: Sequence[str], max_tokens: int, report: Callable[..., None], batch: int = 8
) -> list[tuple[str, float]]:
    """(decoded prefix, exp(mean token NLL)) for each text's first max_tokens tokens."""
    import torch

    from core.runtime.models import heavy_work

    tok = lm.tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in texts]
    out: list[tuple[str, float]] = []
    for start in range(0, len(ids), batch):
        chunk = [x for x in ids[start : start + batch]]
        width = max(len(x) for x in chunk)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        inp = torch.tensor([x + [pad] * (width - len(x)) for x in chunk])  # (B, T)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk])
        with heavy_work(), torch.inference_mode():
            logits = lm.model(input_ids=inp, attention_mask=mask, use_cache=False).logits
        # one row's log-softmax at a time: the batch's would double its 50 MB of logits
        logp = torch.stack(
            [
                torch.log_softmax(row[:-1].float(), -1).gather(-1, x[1:, None])[:, 0]
                for row, x in zip(logits, inp, strict=True)
            ]
        )  # (B, T-1)
        del logits
        m = mask[:, 1:].float()
        nll = -(logp * m).sum(1) / m.sum(1).clamp(min=1)
        for x, v in zip(chunk, nll.tolist(), strict=True):
            out.append((tok.decode(x), math.exp(v)))
        report(min(start + batch, len(ids)) / len(ids), f"{len(out)} of {len(ids)} documents")
    return out


def score_perplexities(
    lm,
    model_id: str,
    docs: Sequence[Doc],
    sample: Sequence[Doc],
    report: Callable[..., None],
    max_tokens: int = 32,
    order: int = 4,
) -> PerplexityResult:
    """The LM and a character n-gram model (trained on clean prose outside the sample) score
    the same prefix of each sampled document."""
    held = {d.id for d in sample}
    train = [
        d.text for d in docs if d.kind == "clean" and d.source == "docs prose" and d.id not in held
    ]
    ngram = train_char_ngram(train, order)
    scored = lm_prefix_perplexities(lm, [d.text for d in sample], max_tokens, report)
    rows = tuple(
        ScoredDoc(d.id, d.kind, prefix, ppl, char_perplexity(ngram, prefix))
        for d, (prefix, ppl) in zip(sample, scored, strict=True)
    )
    return PerplexityResult(rows, model_id, max_tokens, order, len(train))
