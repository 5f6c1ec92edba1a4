"""Prompt engineering measured: one labelled task, four ways of asking, the label read from logits.

Every review is turned into a chat prompt; the model's answer is read at the answer position as
a distribution over the *label tokens* only (the first tokens of "positive"/"negative" and their
capitalised and space-led variants): p(label) = sum of softmax over those tokens. The share of the
whole next-token distribution that falls on label tokens ("label mass") says whether the prompt
made the model answer in the expected format at all.

All reviews of one condition share a prompt prefix (system message, few-shot examples, the
template up to the review): it is computed once and its KV cache reused for every review.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.runtime.models import LoadedModel, heavy_work
from core.shared.chat import render
from core.shared.corpus import DATA as DATA_DIR

DATA = DATA_DIR / "reviews.json"
LABELS: tuple[str, str] = ("positive", "negative")
PLACEHOLDER = "{review}"
TEMPLATE_MAX_CHARS = 1_000
DEFAULT_TEMPLATE = "Review: {review}\nIs this review positive or negative?"
SYSTEM_PROMPT = (
    "You are a sentiment classifier. Read the review and reply with exactly one word: "
    "positive or negative."
)
STEP_BY_STEP = "Think step by step about the reviewer's feelings, then answer positive or negative."
AFTER_THINKING = "\nSo the answer is:"
TECHNIQUES: tuple[str, ...] = ("zero-shot", "system prompt", "few-shot", "step-by-step")
_SENTINEL = "\u2063REVIEW\u2063"  # invisible separator: never in a template or a review

Report = Callable[..., None]


@dataclass(frozen=True)
class Review:
    text: str
    label: str  # "positive" or "negative"


def load_reviews(path: Path = DATA) -> tuple[tuple[Review, ...], tuple[Review, ...]]:
    """(test reviews, few-shot pool) from the shipped JSON."""
    raw = json.loads(path.read_text())
    test = tuple(Review(r["text"], r["label"]) for r in raw["test"])
    shots = tuple(Review(r["text"], r["label"]) for r in raw["shots"])
    return test, shots


# --- the template a learner edits ------------------------------------------------------------


@dataclass(frozen=True)
class CheckedTemplate:
    text: str  # always contains exactly one {review}
    notes: tuple[str, ...]  # what was changed, for the page to show


def check_template(text: str, special_tokens: Sequence[str] = ()) -> CheckedTemplate:
    """A usable template from whatever was typed; every change is explained in `notes`."""
    notes: list[str] = []
    if not text.strip():
        return CheckedTemplate(DEFAULT_TEMPLATE, ("The template was empty: using the default.",))
    for sp in sorted(set(special_tokens), key=len, reverse=True):
        if sp and sp in text:
            text = text.replace(sp, "")
            notes.append(
                f"Removed the special token {sp!r}: typed into a template it would "
                "forge the chat structure."
            )
    if len(text) > TEMPLATE_MAX_CHARS:
        text = text[:TEMPLATE_MAX_CHARS]
        notes.append(f"The template was cut to its first {TEMPLATE_MAX_CHARS:,} characters.")
    count = text.count(PLACEHOLDER)
    if count == 0:
        text = text.rstrip() + "\n" + PLACEHOLDER
        notes.append("The template had no {review} placeholder: the review is added at its end.")
    elif count > 1:
        first = text.index(PLACEHOLDER) + len(PLACEHOLDER)
        text = text[:first] + text[first:].replace(PLACEHOLDER, "")
        notes.append("Only the first {review} placeholder is kept.")
    if not text.replace(PLACEHOLDER, "").strip():
        notes.append("The template holds nothing but the review: the model is not told the task.")
    return CheckedTemplate(text, tuple(notes))


# --- prompts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    technique: str
    template: str = DEFAULT_TEMPLATE  # a checked template
    k: int = 3  # few-shot examples
    seed: int = 0  # which examples, in which order
    think_tokens: int = 24  # step-by-step: tokens the model may write before answering


def few_shot_examples(pool: Sequence[Review], k: int, seed: int) -> list[Review]:
    """k examples from the pool, balanced as far as k allows, shuffled by the seed."""
    rng = random.Random(seed)
    by_label = {lab: [r for r in pool if r.label == lab] for lab in LABELS}
    for group in by_label.values():
        rng.shuffle(group)
    picked: list[Review] = []
    while len(picked) < min(k, len(pool)):
        for lab in rng.sample(LABELS, len(LABELS)):
            if by_label[lab] and len(picked) < k:
                picked.append(by_label[lab].pop())
    rng.shuffle(picked)
    return picked


def chat_messages(cond: Condition, review_text: str, pool: Sequence[Review]) -> list[dict]:
    fill = cond.template.replace(PLACEHOLDER, review_text)
    messages: list[dict] = []
    if cond.technique == "system prompt":
        messages.append({"role": "system", "content": SYSTEM_PROMPT})
    if cond.technique == "few-shot":
        for ex in few_shot_examples(pool, cond.k, cond.seed):
            messages.append(
                {"role": "user", "content": cond.template.replace(PLACEHOLDER, ex.text)}
            )
            messages.append({"role": "assistant", "content": ex.label})
    if cond.technique == "step-by-step":
        fill = fill + "\n" + STEP_BY_STEP
    messages.append({"role": "user", "content": fill})
    return messages


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def split_prompt(tokenizer, cond: Condition, pool: Sequence[Review]) -> tuple[str, str]:
    """(shared prefix, tail with {review}) of this condition's prompt text.

    Trailing whitespace moves from the prefix to the tail, so the tokens of the review's first
    word are the same whether or not the prefix is cached.
    """
    text = render(tokenizer, chat_messages(cond, _SENTINEL, pool))
    prefix, tail = text.split(_SENTINEL, 1)
    stripped = prefix.rstrip()
    return stripped, prefix[len(stripped) :] + PLACEHOLDER + tail


def label_token_ids(tokenizer) -> dict[str, tuple[int, ...]]:
    """The first token of each spelling of each label; tokens two labels share are dropped."""
    found: dict[str, set[int]] = {}
    for lab in LABELS:
        variants = {lab, lab.capitalize(), " " + lab, " " + lab.capitalize()}
        found[lab] = {_encode(tokenizer, v)[0] for v in variants if _encode(tokenizer, v)}
    shared = set.intersection(*found.values())
    return {lab: tuple(sorted(ids - shared)) for lab, ids in found.items()}


@dataclass(frozen=True)
class LabelRead:
    probs: dict[str, float]  # over the labels only: sums to 1
    mass: float  # share of the whole next-token distribution on label tokens
    top_token: int  # what the model would actually say next


def read_labels(logits: torch.Tensor, label_ids: dict[str, tuple[int, ...]]) -> LabelRead:
    """Softmax over the label tokens only, summed per label; logits is (vocab,)."""
    logits = logits.float()
    all_ids = [i for lab in LABELS for i in label_ids[lab]]
    sub = logits[all_ids].softmax(-1)  # (n_label_tokens,)
    probs, start = {}, 0
    for lab in LABELS:
        n = len(label_ids[lab])
        probs[lab] = float(sub[start : start + n].sum())
        start += n
    mass = float(logits.softmax(-1)[all_ids].sum())
    return LabelRead(probs, mass, int(logits.argmax()))


# --- measuring one condition -----------------------------------------------------------------


@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    p_positive: tuple[float, ...]  # per review, over the label tokens
    mass: tuple[float, ...]  # per review, share of all probability on label tokens
    truth: tuple[int, ...]  # 1 = positive
    said: tuple[str, ...]  # the model's most likely next token at the answer position
    thoughts: tuple[str, ...]  # step-by-step: what it wrote before answering ("" otherwise)
    prompt_tokens: tuple[int, ...]  # tokens the model reads per review (incl. its own thoughts)
    generated_tokens: tuple[int, ...]  # tokens it generated per review
    computed_tokens: int  # tokens actually run through the model (shared prefix once)
    prefix_tokens: int


READ_BATCH = 6  # reviews read in one forward pass over the shared prefix's cache


def _forward_last(lm: LoadedModel, ids: list[int], cache=None) -> tuple[torch.Tensor, object]:
    with heavy_work(), torch.inference_mode():
        # only the last position's logits: the 49k-wide head over every token is wasted work
        out = lm.model(torch.tensor([ids]), cache=cache, use_cache=True, logits_to_keep=1)
    return out.logits[0, -1].float(), out.cache  # (vocab,)


def read_tails(lm: LoadedModel, prefix_cache, tails: list[list[int]]) -> torch.Tensor:
    """Next-token logits after prefix + each tail, all tails in one batch over the prefix cache.

    Tails are padded on the right: under causal attention a real token never sees the padding
    after it, so no attention mask is needed and every real token keeps its position.
    """
    width = max(len(t) for t in tails)
    pad = lm.tokenizer.pad_token_id or 0
    batch = torch.tensor([t + [pad] * (width - len(t)) for t in tails])  # (B, width)
    last = [len(t) - 1 for t in tails]
    keep = sorted(set(last))
    cache = None
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(tails))
    with heavy_work(), torch.inference_mode():
        out = lm.model(
            batch, cache=cache, use_cache=cache is not None, logits_to_keep=torch.tensor(keep)
        )
    logits = out.logits.float()  # (B, len(keep), vocab)
    return torch.stack([logits[b, keep.index(i)] for b, i in enumerate(last)])  # (B, vocab)


def _think(lm: LoadedModel, ids: list[int], budget: int) -> list[int]:
    """Greedy thoughts through the one generation door, without the end-of-turn token."""
    from core.runtime.generation import DecodingSettings, generate_stream
    from core.shared.chat import eos_ids

    eos = set(eos_ids(lm))
    out: list[int] = []
    for step in generate_stream(lm, ids, DecodingSettings(temperature=0.0, max_new_tokens=budget)):
        if step.token_id in eos:
            break
        out.append(step.token_id)
    return out


def measure_condition(
    lm: LoadedModel,
    cond: Condition,
    reviews: Sequence[Review],
    pool: Sequence[Review],
    report: Report = lambda *a, **k: None,
    reuse_prefix: bool = True,
) -> ConditionResult:
    """Each review's label distribution at the answer position, reusing the shared prefix."""
    tok = lm.tokenizer
    label_ids = label_token_ids(tok)
    prefix_text, tail_template = split_prompt(tok, cond, pool)
    prefix = _encode(tok, prefix_text)
    thinking = cond.technique == "step-by-step" and cond.think_tokens > 0
    cache, computed = None, 0
    if prefix and not thinking and reuse_prefix:
        _, cache = _forward_last(lm, prefix)
        computed += len(prefix)
    rows = []
    tails = [_encode(tok, tail_template.replace(PLACEHOLDER, r.text)) for r in reviews]
    step = 1 if thinking else READ_BATCH
    for start in range(0, len(reviews), step):
        chunk = list(range(start, min(start + step, len(reviews))))
        if thinking:
            (i,) = chunk
            thoughts = _think(lm, prefix + tails[i], cond.think_tokens)
            full = prefix + tails[i] + thoughts + _encode(tok, AFTER_THINKING)
            logits = read_tails(lm, None, [full])
            computed += len(prefix) + len(tails[i]) + len(thoughts) + len(full)
            found = [(thoughts, logits[0])]
        else:
            chunk_tails = [tails[i] if cache is not None else prefix + tails[i] for i in chunk]
            logits = read_tails(lm, cache, chunk_tails)
            computed += sum(len(t) for t in chunk_tails)
            found = [([], logits[j]) for j in range(len(chunk))]
        for i, (thoughts, lg) in zip(chunk, found):
            rows.append((read_labels(lg, label_ids), reviews[i], tails[i], thoughts))
        report(
            chunk[-1] / len(reviews) + 1 / len(reviews),
            f"{cond.technique}: review {chunk[-1] + 1} of {len(reviews)}",
        )
    extra = len(_encode(tok, AFTER_THINKING)) if thinking else 0
    return ConditionResult(
        condition=cond,
        p_positive=tuple(read.probs["positive"] for read, *_ in rows),
        mass=tuple(read.mass for read, *_ in rows),
        truth=tuple(int(r.label == "positive") for _, r, *_ in rows),
        said=tuple(tok.decode([read.top_token]) for read, *_ in rows),
        thoughts=tuple(tok.decode(th) for *_, th in rows),
        prompt_tokens=tuple(len(prefix) + len(t) + len(th) + extra for _, _, t, th in rows),
        generated_tokens=tuple(len(th) for *_, th in rows),
        computed_tokens=computed,
        prefix_tokens=len(prefix),
    )


# --- scores, always recomputed from the stored outputs ---------------------------------------


def accuracy(p_positive: Sequence[float], truth: Sequence[int], threshold: float = 0.5) -> float:
    """Share of reviews where 'p(positive) >= threshold' agrees with the label."""
    if not truth:
        return float("nan")
    pred = [int(p >= threshold) for p in p_positive]
    return sum(int(a == b) for a, b in zip(pred, truth)) / len(truth)


def auc(scores: Sequence[float], truth: Sequence[int]) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(a positive outranks a negative), ties count 1/2."""
    pos = np.array([s for s, t in zip(scores, truth) if t == 1], dtype=float)
    neg = np.array([s for s, t in zip(scores, truth) if t == 0], dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def best_threshold(p_positive: Sequence[float], truth: Sequence[int]) -> tuple[float, float]:
    """(threshold, accuracy) of the best cut between sorted scores: what a tuned cut could do."""
    cuts = sorted(set([0.0, 1.0 + 1e-9] + [float(p) for p in p_positive]))
    best = max(cuts, key=lambda c: (accuracy(p_positive, truth, c), -abs(c - 0.5)))
    return best, accuracy(p_positive, truth, best)


@dataclass(frozen=True)
class Summary:
    technique: str
    accuracy: float  # at threshold 0.5
    label_mass: float  # mean over reviews
    auc: float
    prompt_tokens: int  # summed over reviews: what a hosted API would bill
    computed_tokens: int
    generated_tokens: int


def summarise(res: ConditionResult) -> Summary:
    return Summary(
        res.condition.technique,
        accuracy(res.p_positive, res.truth),
        float(np.mean(res.mass)),
        auc(res.p_positive, res.truth),
        sum(res.prompt_tokens),
        res.computed_tokens,
        sum(res.generated_tokens),
    )
