"""The pipeline's steps, in the shape datatrove uses: each step is a small class holding its own
thresholds, with `run(docs) -> StepOutput` (the documents kept and those dropped, each with its
reason). Rule filters read one document at a time and defaults follow Gopher/C4-style rules of
thumb; dedup steps compare documents; PII masking rewrites text and drops nothing.

What a step measures without thresholds (statistics, MinHash signatures) may be measured once
for the whole corpus and handed over in `Measured`, so moving a slider only re-compares numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from core.pretraining_data.corpus import Doc
from core.pretraining_data.dedup import (
    exact_duplicates,
    lsh_candidates,
    minhash_signatures,
    near_duplicates,
    shingles,
)
from core.pretraining_data.measures import DocStats, language_of, quality_stats, repetition_stats
from core.pretraining_data.pii import mask_pii


@dataclass(frozen=True)
class Dropped:
    doc_id: int
    stage: str
    reason: str


@dataclass(frozen=True)
class StepOutput:
    kept: tuple[Doc, ...]
    dropped: tuple[Dropped, ...]
    masked: tuple[tuple[int, str, int], ...] = ()  # (id, masked text, placeholders) if any
    candidate_pairs: int = 0  # near dedup: LSH candidates among its input


@dataclass(frozen=True)
class Measured:
    """Threshold-free measurements by document id, computed once for a corpus: the rule
    statistics, and MinHash signatures for the near-dedup step's shingle size and permutations.
    A document missing from either is measured on the spot."""

    stats: Mapping[int, DocStats] | None = None
    signatures: Mapping[int, np.ndarray] | None = None


class Step(ABC):
    """One pipeline step; subclasses are frozen dataclasses whose fields are its thresholds."""

    name: ClassVar[str]
    catches: ClassVar[tuple[str, ...]]  # the injected kinds this step is meant for
    drops: ClassVar[bool] = True  # False for a step that rewrites documents instead

    @abstractmethod
    def run(self, docs: Sequence[Doc], seen: Measured | None = None) -> StepOutput:
        """The documents it keeps (rewritten, for a masking step) and those it drops, why."""


class RuleFilter(Step):
    """A filter that judges each document alone: `measure` it, then `verdict` on the numbers."""

    stat: ClassVar[str]  # its field of DocStats

    @abstractmethod
    def measure(self, text: str) -> Any:
        """The numbers this filter judges, measured on one text (threshold-free)."""

    @abstractmethod
    def verdict(self, measured: Any) -> str | None:
        """Why the measured numbers fail this filter's thresholds, or None when they pass."""

    def reason(self, text: str) -> str | None:
        """Why this step drops `text`, or None when it passes."""
        return self.verdict(self.measure(text))

    def run(self, docs: Sequence[Doc], seen: Measured | None = None) -> StepOutput:
        stats = (seen.stats if seen else None) or {}
        kept, dropped = [], []
        for d in docs:
            known = stats.get(d.id)
            why = self.verdict(getattr(known, self.stat) if known else self.measure(d.text))
            if why is None:
                kept.append(d)
            else:
                dropped.append(Dropped(d.id, self.name, why))
        return StepOutput(tuple(kept), tuple(dropped))


@dataclass(frozen=True)
class LanguageFilter(RuleFilter):
    """Drop documents whose stop words are mostly another language's (or another script)."""

    min_english: float = 0.5  # English share of the stop words found

    name: ClassVar[str] = "language"
    catches: ClassVar[tuple[str, ...]] = ("foreign", "spam")  # spam without a stop word
    stat: ClassVar[str] = "language"

    def measure(self, text: str) -> tuple[str, float]:
        return language_of(text)

    def verdict(self, measured: tuple[str, float]) -> str | None:
        lang, share = measured
        if share >= self.min_english:
            return None
        if lang == "unknown":
            return (
                "language: no stop word of any language, no sign of English "
                f"(min {self.min_english:.0%})"
            )
        return f"language: {lang} (English {share:.0%} of stop words, min {self.min_english:.0%})"


@dataclass(frozen=True)
class QualityFilter(RuleFilter):
    """Drop what does not read like prose: too short, boilerplate, symbols, capitals, no stop
    words (C4 and Gopher rules)."""

    min_words: int = 8
    max_symbol_ratio: float = 0.25  # characters neither letters, digits nor spaces
    min_stopword_ratio: float = 0.05  # English stop words among the words
    max_caps_ratio: float = 0.3  # words written in capitals
    max_boilerplate_lines: float = 0.4  # lines with a cookie/nav/footer phrase

    name: ClassVar[str] = "quality"
    catches: ClassVar[tuple[str, ...]] = ("boilerplate", "spam")
    stat: ClassVar[str] = "quality"

    def measure(self, text: str) -> dict[str, float]:
        return quality_stats(text)

    def verdict(self, s: dict[str, float]) -> str | None:
        if s["words"] < self.min_words:
            return f"too short: {s['words']} words (min {self.min_words})"
        if s["boilerplate_lines"] > self.max_boilerplate_lines:
            return (
                f"boilerplate: {s['boilerplate_lines']:.0%} of lines "
                f"(max {self.max_boilerplate_lines:.0%})"
            )
        if s["symbol_ratio"] > self.max_symbol_ratio:
            return (
                f"symbols: {s['symbol_ratio']:.0%} of characters (max {self.max_symbol_ratio:.0%})"
            )
        if s["caps_ratio"] > self.max_caps_ratio:
            return f"capitals: {s['caps_ratio']:.0%} of words (max {self.max_caps_ratio:.0%})"
        if s["stopword_ratio"] < self.min_stopword_ratio:
            return (
                f"stop words: {s['stopword_ratio']:.0%} of words "
                f"(min {self.min_stopword_ratio:.0%})"
            )
        return None


@dataclass(frozen=True)
class RepetitionFilter(RuleFilter):
    """Drop repetitive text (Gopher): repeated lines, one dominant word pair, repeated 5-grams."""

    max_dup_lines: float = 0.3
    max_top_bigram: float = 0.3  # characters covered by the most frequent word pair
    max_dup_5gram: float = 0.3  # characters inside word 5-grams seen twice

    name: ClassVar[str] = "repetition"
    catches: ClassVar[tuple[str, ...]] = ("spam",)
    stat: ClassVar[str] = "repetition"

    def measure(self, text: str) -> dict[str, float]:
        return repetition_stats(text)

    def verdict(self, s: dict[str, float]) -> str | None:
        if s["dup_lines"] > self.max_dup_lines:
            return f"repeated lines: {s['dup_lines']:.0%} (max {self.max_dup_lines:.0%})"
        if s["top_bigram"] > self.max_top_bigram:
            return f"one word pair covers {s['top_bigram']:.0%} (max {self.max_top_bigram:.0%})"
        if s["dup_5gram"] > self.max_dup_5gram:
            return f"repeated 5-grams cover {s['dup_5gram']:.0%} (max {self.max_dup_5gram:.0%})"
        return None


@dataclass(frozen=True)
class ExactDedup(Step):
    """Drop later copies of a text whose normalised form was seen before."""

    name: ClassVar[str] = "exact dedup"
    catches: ClassVar[tuple[str, ...]] = ("exact_dup", "near_dup")

    def run(self, docs: Sequence[Doc], seen: Measured | None = None) -> StepOutput:
        dups = exact_duplicates([d.text for d in docs])
        dropped = tuple(
            Dropped(docs[i].id, self.name, f"same text as document {docs[j].id}")
            for i, j in dups.items()
        )
        return StepOutput(tuple(d for i, d in enumerate(docs) if i not in dups), dropped)


@dataclass(frozen=True)
class NearDedup(Step):
    """MinHash signatures of character shingles, banded LSH for candidate pairs, and the later
    document of each candidate pair whose estimated Jaccard reaches `jaccard` dropped."""

    shingle: int = 5  # characters per MinHash shingle
    num_perm: int = 128
    bands: int = 16
    jaccard: float = 0.7  # candidates at or above this estimated similarity are duplicates

    name: ClassVar[str] = "near dedup"
    catches: ClassVar[tuple[str, ...]] = ("near_dup",)

    def signatures(self, docs: Sequence[Doc]) -> np.ndarray:
        return minhash_signatures((shingles(d.text, self.shingle) for d in docs), self.num_perm)

    def run(self, docs: Sequence[Doc], seen: Measured | None = None) -> StepOutput:
        known = seen.signatures if seen and seen.signatures is not None else None
        if known is not None and all(d.id in known for d in docs):
            sub = np.stack([known[d.id] for d in docs]) if docs else self.signatures(docs)
        else:
            sub = self.signatures(docs)
        candidates = lsh_candidates(sub, self.bands)
        near = near_duplicates(sub, self.bands, self.jaccard, candidates)
        dropped = tuple(
            Dropped(
                docs[i].id, self.name, f"estimated Jaccard {est:.2f} with document {docs[j].id}"
            )
            for i, (j, est) in near.items()
        )
        kept = tuple(d for i, d in enumerate(docs) if i not in near)
        return StepOutput(kept, dropped, candidate_pairs=len(candidates))


@dataclass(frozen=True)
class PiiMask(Step):
    """Replace e-mail addresses, phone numbers and IPv4 addresses by placeholders."""

    name: ClassVar[str] = "pii masking"
    catches: ClassVar[tuple[str, ...]] = ("pii",)
    drops: ClassVar[bool] = False

    def run(self, docs: Sequence[Doc], seen: Measured | None = None) -> StepOutput:
        kept, masked = [], []
        for d in docs:
            text, n = mask_pii(d.text)
            if n:
                masked.append((d.id, text, n))
                d = replace(d, text=text)
            kept.append(d)
        return StepOutput(tuple(kept), (), tuple(masked))
