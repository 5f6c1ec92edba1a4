"""What the rule steps measure on one document (language, quality, repetition), independent of
any threshold: measured once per corpus, so moving a slider only re-compares numbers."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"\w+")
EN_STOP = frozenset(
    "the of and to is that it for with as this are be by or which not from can if when was its "
    "has have these will you your an at but they their there than then also such been were "
    "would should may must any all each other into only more most some what how".split()
)
# Words frequent in each language and rare in English prose or Python (no "a", "is", "as",
# "del", "on", "per", "non", "do", "y" ...): shared words would mislabel English as foreign.
OTHER_STOP: dict[str, frozenset[str]] = {
    "de": frozenset(
        "der die das und ist nicht mit dem ein eine einer wird werden sich auf "
        "für wenn kann bis ihn sie darin mehr immer".split()
    ),
    "fr": frozenset(
        "le les et est des une du dans pour que qui ne pas avec sur au aux elle il "
        "se ce sont toujours".split()
    ),
    "es": frozenset(
        "el los las es que una para con por se lo sea mientras siempre su sus ningún".split()
    ),
    "it": frozenset("il lo gli che di della una con si sono ogni suo finché sempre".split()),
    "nl": frozenset(
        "het een en van dat die niet voor zijn als je wordt worden geen elke daarin".split()
    ),
    "pt": frozenset(
        "os as que da dos das um uma para com não se por num sempre enquanto é".split()
    ),
}
BOILERPLATE_PHRASES: tuple[str, ...] = (
    "cookie",
    "all rights reserved",
    "privacy policy",
    "terms of use",
    "click here",
    "subscribe",
    "newsletter",
    "sign in",
    "log in",
    "javascript",
    "skip to",
    "follow us",
    "powered by",
    "share this",
    "read more",
    "sitemap",
)


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


def script_of(text: str) -> str:
    """'latin' unless most letters belong to another script (named by Unicode, e.g. CJK)."""
    letters = [c for c in text if c.isalpha()]
    other = [c for c in letters if ord(c) > 0x24F]
    if not letters or len(other) / len(letters) <= 0.5:
        return "latin"
    names = Counter(unicodedata.name(c, "OTHER").split()[0] for c in other)
    return names.most_common(1)[0][0].lower()


def language_of(text: str) -> tuple[str, float]:
    """(language, English share of the stop words found); ('unknown', 0.0) when none is
    found: a text without a single stop word shows no evidence of English."""
    script = script_of(text)
    if script != "latin":
        return script, 0.0
    words = words_of(text)
    hits = {"en": sum(w in EN_STOP for w in words)}
    hits |= {lang: sum(w in stop for w in words) for lang, stop in OTHER_STOP.items()}
    total = sum(hits.values())
    if total == 0:
        return "unknown", 0.0
    return max(hits, key=hits.__getitem__), hits["en"] / total


def is_menu(line: str) -> bool:
    """A navigation line: three or more short items between bars or '>' (not a table row)."""
    s = line.strip()
    if s.startswith(("|", "+")):
        return False
    items = [x.strip() for x in re.split(r"\s[|>]\s", s)]
    return len(items) >= 3 and all(0 < len(x.split()) <= 3 for x in items)


def quality_stats(text: str) -> dict[str, float]:
    words = words_of(text)
    raw_words = WORD.findall(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    chars = [c for c in text if not c.isspace()]
    symbols = sum(not c.isalnum() for c in chars)
    caps = sum(w.isupper() and len(w) > 1 for w in raw_words)
    boiler = sum(any(p in ln.lower() for p in BOILERPLATE_PHRASES) or is_menu(ln) for ln in lines)
    return {
        "words": len(words),
        "symbol_ratio": symbols / max(len(chars), 1),
        "stopword_ratio": sum(w in EN_STOP for w in words) / max(len(words), 1),
        "caps_ratio": caps / max(len(raw_words), 1),
        "boilerplate_lines": boiler / max(len(lines), 1),
    }


def repetition_stats(text: str) -> dict[str, float]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    dup_lines = len(lines) - len(set(lines))
    words = words_of(text)
    total = sum(len(w) for w in words) or 1
    pairs = Counter(zip(words, words[1:], strict=False))
    top = 0.0
    if pairs:
        (a, b), n = pairs.most_common(1)[0]
        top = n * (len(a) + len(b)) / total if n > 1 else 0.0
    grams = [tuple(words[i : i + 5]) for i in range(len(words) - 4)]
    seen = Counter(grams)
    covered = np.zeros(len(words), bool)
    for i, g in enumerate(grams):
        if seen[g] > 1:
            covered[i : i + 5] = True
    dup5 = sum(len(w) for w, c in zip(words, covered, strict=True) if c) / total
    return {"dup_lines": dup_lines / max(len(lines), 1), "top_bigram": top, "dup_5gram": dup5}


@dataclass(frozen=True)
class DocStats:
    """Everything the rule stages measure on one document: independent of the thresholds, so
    moving a slider only re-compares numbers."""

    language: tuple[str, float]
    quality: dict[str, float]
    repetition: dict[str, float]


def doc_stats(text: str) -> DocStats:
    return DocStats(language_of(text), quality_stats(text), repetition_stats(text))
