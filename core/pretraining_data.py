"""A pre-training data pipeline on a sample corpus: heuristics, dedup, MinHash LSH, PII masking.

The sample mixes distinct paragraphs of Python's documentation (`core.shared.corpus`) with junk of
each kind a web-scale pipeline must catch, generated with a fixed seed from hand-written
material in `data/pretraining_junk.json`: exact and near duplicates, boilerplate, spam, other
languages and personal data. Every injected document keeps its label, so each stage's recall
on the junk it targets is measurable. Each stage is a pure function of texts and thresholds.

MinHash follows datasketch 2.0.0's default scheme ("affine32") exactly: SHA-1's first four
bytes as the shingle hash, a MurmurHash3 finaliser, then h -> a*h + b mod 2^32 per permutation,
with a, b drawn from `np.random.RandomState(seed)`; vectorised over all shingles at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.shared.corpus import DATA, pydoc_paragraphs

JUNK_FILE = DATA / "pretraining_junk.json"
KINDS: tuple[str, ...] = ("clean", "exact_dup", "near_dup", "boilerplate", "spam", "foreign", "pii")
SOURCES: tuple[str, ...] = ("docs prose", "docs code", "web crawl")
STAGES: tuple[str, ...] = ("raw", "language", "quality", "repetition", "exact dedup", "near dedup")
# Which stage is meant to catch each injected kind (PII is masked, not dropped).
TARGET_STAGE: dict[str, str] = {
    "exact_dup": "exact dedup",
    "near_dup": "near dedup",
    "boilerplate": "quality",
    "spam": "language|quality|repetition",  # spam without one stop word shows no English
    "foreign": "language",
}

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
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digit groups split by spaces or hyphens, optionally +country and (area): phone-
# shaped when it holds 7 or more digits (checked in mask_pii).
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?)?\d{2,6}(?:[ -]\d{2,6}){1,4}"
    r"(?!\w)(?!\.\d)"
)
MIN_PHONE_DIGITS = 7
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Doc:
    id: int
    text: str
    kind: str  # one of KINDS: what was injected (clean = a real documentation paragraph)
    source: str  # one of SOURCES, for the mixture
    origin: int = -1  # for duplicates: the id of the document copied
    pii: tuple[str, ...] = ()  # personal data written into the text, to check the masking


# ---- the sample corpus ---------------------------------------------------------------------


@lru_cache(maxsize=1)  # a parsed data file: a per-process constant
def junk_material() -> dict:
    return json.loads(JUNK_FILE.read_text(encoding="utf-8"))


def looks_like_code(text: str) -> bool:
    """Grammar rules, interactive sessions and indented listings, not running prose."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    codey = sum(ln.startswith((" ", "\t")) or ">>>" in ln or "::=" in ln for ln in lines)
    return codey / max(len(lines), 1) > 0.4


def _near_copy(text: str, rng: random.Random) -> str:
    """A small edit: 1-3 words swapped, dropped or doubled, or a note appended."""
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        op = rng.choice(("swap", "drop", "double", "case"))
        if op == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "drop" and len(words) > 10:
            del words[i]
        elif op == "double":
            words.insert(i, words[i])
        else:
            words[i] = words[i].upper() if words[i].islower() else words[i].lower()
    out = " ".join(words)
    return out + rng.choice(("", " (updated)", " See also the tutorial.", ""))


def _boilerplate(rng: random.Random) -> str:
    m = junk_material()["boilerplate"]
    lines = rng.sample(m["nav"], 2) + rng.sample(m["cookie"], rng.randint(1, 3))
    lines += rng.sample(m["footer"], rng.randint(2, 4))
    rng.shuffle(lines)
    return "\n".join(lines)


def _spam(rng: random.Random) -> str:
    m = junk_material()["spam"]
    keys = rng.sample(m["keywords"], 2)
    if rng.random() < 0.5:  # keyword stuffing
        words = [rng.choice(keys) for _ in range(rng.randint(12, 24))]
        return " ".join(words) + " " + rng.choice(m["shouts"])
    return " ".join(rng.sample(m["shouts"], 4)) + " " + " ".join(k.upper() for k in keys)


def _foreign(lang: str, rng: random.Random) -> str:
    sentences = junk_material()["foreign"][lang]
    joiner = "" if lang in ("zh", "ja") else " "
    return joiner.join(rng.sample(sentences, rng.randint(3, 5)))


def _pii(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    m = junk_material()["pii"]
    first, last = rng.choice(m["first"]), rng.choice(m["last"])
    email = f"{first.lower()}.{last.lower()}@{rng.choice(m['domains'])}"
    email = unicodedata.normalize("NFKD", email).encode("ascii", "ignore").decode()
    phone = rng.choice(m["phones"]).format(
        d2=f"{rng.randrange(100):02d}", d4=f"{rng.randrange(10000):04d}"
    )
    contact = rng.choice(m["contact"]).format(name=f"{first} {last}", email=email, phone=phone)
    body = rng.sample(m["sentences"], 3)
    body.insert(rng.randint(1, 3), contact)
    return " ".join(body), (email, phone)


@dataclass(frozen=True)
class CorpusSpec:
    exact_dups: int = 120
    near_dups: int = 120
    boilerplate: int = 80
    spam: int = 60
    foreign: int = 72
    pii: int = 60
    seed: int = 0


def _clean_docs(rng: random.Random) -> list[Doc]:
    seen: set[str] = set()
    docs = []
    for _topic, text in pydoc_paragraphs():
        if text not in seen:  # the documentation itself repeats some paragraphs: keep one
            seen.add(text)
            source = "docs code" if looks_like_code(text) else "docs prose"
            docs.append(Doc(0, text, "clean", source))
    rng.shuffle(docs)
    return docs


def _insert_after(docs: list[Doc], copy: Doc, origin_pos: int, rng: random.Random) -> None:
    docs.insert(rng.randint(origin_pos + 1, len(docs)), copy)


def sample_corpus(spec: CorpusSpec = CorpusSpec()) -> tuple[Doc, ...]:
    """Distinct documentation paragraphs plus seeded junk; copies always follow their original."""
    rng = random.Random(spec.seed)
    docs = _clean_docs(rng)
    langs = sorted(junk_material()["foreign"])
    junk = [Doc(0, _boilerplate(rng), "boilerplate", "web crawl") for _ in range(spec.boilerplate)]
    junk += [Doc(0, _spam(rng), "spam", "web crawl") for _ in range(spec.spam)]
    junk += [
        Doc(0, _foreign(langs[i % len(langs)], rng), "foreign", "web crawl")
        for i in range(spec.foreign)
    ]
    for _ in range(spec.pii):
        text, found = _pii(rng)
        junk.append(Doc(0, text, "pii", "web crawl", pii=found))
    for d in junk:
        docs.insert(rng.randint(0, len(docs)), d)
    docs = [Doc(i, d.text, d.kind, d.source, d.origin, d.pii) for i, d in enumerate(docs)]
    prose = [
        d
        for d in docs
        if d.kind == "clean" and d.source == "docs prose" and len(d.text.split()) >= 25
    ]
    for kind, count in (("exact_dup", spec.exact_dups), ("near_dup", spec.near_dups)):
        for orig in rng.sample(prose, count):
            text = orig.text if kind == "exact_dup" else _near_copy(orig.text, rng)
            pos = next(i for i, d in enumerate(docs) if d.id == orig.id)
            _insert_after(docs, Doc(-1, text, kind, "web crawl", orig.id), pos, rng)
    next_id = len(docs) - spec.exact_dups - spec.near_dups
    out = []
    for d in docs:
        if d.id < 0:
            d = Doc(next_id, d.text, d.kind, d.source, d.origin, d.pii)
            next_id += 1
        out.append(d)
    return tuple(out)


# ---- stage 1: language -------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Every knob of the cheap pipeline; defaults follow Gopher/C4-style rules of thumb."""

    min_english: float = 0.5  # English share of the stop words found
    min_words: int = 8
    max_symbol_ratio: float = 0.25  # characters neither letters, digits nor spaces
    min_stopword_ratio: float = 0.05  # English stop words among the words
    max_caps_ratio: float = 0.3  # words written in capitals
    max_boilerplate_lines: float = 0.4  # lines with a cookie/nav/footer phrase
    max_dup_lines: float = 0.3
    max_top_bigram: float = 0.3  # characters covered by the most frequent word pair
    max_dup_5gram: float = 0.3  # characters inside word 5-grams seen twice
    shingle: int = 5  # characters per MinHash shingle
    num_perm: int = 128
    bands: int = 16
    jaccard: float = 0.7  # candidates at or above this estimated similarity are duplicates


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


def language_reason(
    text: str, t: Thresholds, lang_share: tuple[str, float] | None = None
) -> str | None:
    lang, share = lang_share or language_of(text)
    if share >= t.min_english:
        return None
    if lang == "unknown":
        return (
            f"language: no stop word of any language, no sign of English (min {t.min_english:.0%})"
        )
    return f"language: {lang} (English {share:.0%} of stop words, min {t.min_english:.0%})"


# ---- stage 2: quality ----------------------------------------------------------------------


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


def quality_reason(text: str, t: Thresholds, stats: dict[str, float] | None = None) -> str | None:
    s = stats or quality_stats(text)
    if s["words"] < t.min_words:
        return f"too short: {s['words']} words (min {t.min_words})"
    if s["boilerplate_lines"] > t.max_boilerplate_lines:
        return (
            f"boilerplate: {s['boilerplate_lines']:.0%} of lines "
            f"(max {t.max_boilerplate_lines:.0%})"
        )
    if s["symbol_ratio"] > t.max_symbol_ratio:
        return f"symbols: {s['symbol_ratio']:.0%} of characters (max {t.max_symbol_ratio:.0%})"
    if s["caps_ratio"] > t.max_caps_ratio:
        return f"capitals: {s['caps_ratio']:.0%} of words (max {t.max_caps_ratio:.0%})"
    if s["stopword_ratio"] < t.min_stopword_ratio:
        return f"stop words: {s['stopword_ratio']:.0%} of words (min {t.min_stopword_ratio:.0%})"
    return None


# ---- stage 3: repetition (Gopher) ----------------------------------------------------------


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


def repetition_reason(
    text: str, t: Thresholds, stats: dict[str, float] | None = None
) -> str | None:
    s = stats or repetition_stats(text)
    if s["dup_lines"] > t.max_dup_lines:
        return f"repeated lines: {s['dup_lines']:.0%} (max {t.max_dup_lines:.0%})"
    if s["top_bigram"] > t.max_top_bigram:
        return f"one word pair covers {s['top_bigram']:.0%} (max {t.max_top_bigram:.0%})"
    if s["dup_5gram"] > t.max_dup_5gram:
        return f"repeated 5-grams cover {s['dup_5gram']:.0%} (max {t.max_dup_5gram:.0%})"
    return None


# ---- stage 4: exact dedup ------------------------------------------------------------------


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """Index -> index of the first text with the same normalised content (later copies only)."""
    first: dict[bytes, int] = {}
    dups = {}
    for i, text in enumerate(texts):
        h = hashlib.sha1(normalise(text).encode("utf-8")).digest()
        if h in first:
            dups[i] = first[h]
        else:
            first[h] = i
    return dups


# ---- stage 5: MinHash + banded LSH ---------------------------------------------------------

MAX32 = np.uint64(0xFFFFFFFF)


def shingles(text: str, k: int) -> set[str]:
    """Character k-grams of the normalised text."""
    s = normalise(text)
    if len(s) <= k:
        return {s}
    return {s[i : i + k] for i in range(len(s) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters: odd a and any b, mod 2^32."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hashes(shingle_set: Sequence[str] | set[str]) -> np.ndarray:
    """First four bytes of SHA-1, little-endian (datasketch's sha1_hash32), pre-mixed: (S,)."""
    raw = b"".join(hashlib.sha1(s.encode("utf-8")).digest()[:4] for s in shingle_set)
    return _fmix32(np.frombuffer(raw, dtype="<u4").astype(np.uint32))


def minhash_signatures(
    sets: Iterable[Collection[str]], num_perm: int, seed: int = 1, chunk: int = 8_192
) -> np.ndarray:
    """One row of num_perm minimum permuted hashes per set: (n, num_perm) uint32.

    The sets are read one at a time (a generator serves), and their hashes are reduced in
    blocks of about `chunk` shingles, so memory stays at a few MB whatever the corpus size."""
    a, b = permutations(num_perm, seed)
    rows: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def reduce_pending() -> None:
        flat = np.concatenate(pending)  # (S,) the block's hashes, document after document
        phv = flat[:, None] * a[None, :] + b[None, :]  # (S, num_perm), wraps mod 2^32
        offsets = np.cumsum([0] + [len(h) for h in pending[:-1]])
        rows.append(np.minimum.reduceat(phv, offsets, axis=0))
        pending.clear()

    size = 0
    for one in sets:
        hashes = shingle_hashes(one)
        if not len(hashes):
            raise ValueError("an empty shingle set has no MinHash")
        if pending and size + len(hashes) > chunk:
            reduce_pending()
            size = 0
        pending.append(hashes)
        size += len(hashes)
    if pending:
        reduce_pending()
    if not rows:
        return np.empty((0, num_perm), dtype=np.uint32)
    return np.concatenate(rows).astype(np.uint32, copy=False)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def candidate_probability(
    similarity: np.ndarray | float, bands: int, rows: int
) -> np.ndarray | float:
    """P(two documents share at least one band) = 1 - (1 - s^r)^b: the LSH S-curve."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """The similarity where the S-curve is steepest, about (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


def lsh_candidates(signatures: np.ndarray, bands: int) -> set[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on every row of at least one band."""
    n, num_perm = signatures.shape
    rows = num_perm // bands
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for i in range(n):
            buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            for x, i in enumerate(members):
                pairs.update((i, j) for j in members[x + 1 :])
    return pairs


def near_duplicates(
    signatures: np.ndarray,
    bands: int,
    threshold: float,
    candidates: set[tuple[int, int]] | None = None,
) -> dict[int, tuple[int, float]]:
    """Row -> (earlier row, estimated Jaccard) for rows matching an earlier one: the later copy
    of each candidate pair whose estimate reaches the threshold is dropped."""
    if candidates is None:
        candidates = lsh_candidates(signatures, bands)
    found: dict[int, tuple[int, float]] = {}
    for i, j in sorted(candidates, key=lambda p: (p[1], p[0])):
        est = estimated_jaccard(signatures[i], signatures[j])
        if est >= threshold and j not in found:
            found[j] = (i, est)
    return found


@dataclass(frozen=True)
class JaccardCheck:
    pair: tuple[str, ...]  # "near-duplicate pair" or "random pair"
    true: np.ndarray  # exact Jaccard of the shingle sets
    estimated: np.ndarray  # share of equal MinHash values

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean(np.abs(self.true - self.estimated)))


def minhash_check(
    docs: Sequence[Doc],
    k: int,
    signatures: np.ndarray,
    n_random: int = 200,
    seed: int = 0,
) -> JaccardCheck:
    """MinHash estimates against exact Jaccard of the k-shingle sets: every injected
    near-duplicate with its original, plus random pairs (mostly dissimilar) to cover the low
    end. Only the documents in a pair are shingled."""
    row = {d.id: i for i, d in enumerate(docs)}
    pairs = [
        (row[d.origin], row[d.id], "near-duplicate pair") for d in docs if d.kind == "near_dup"
    ]
    rng = random.Random(seed)
    pairs += [(*rng.sample(range(len(docs)), 2), "random pair") for _ in range(n_random)]
    sets: dict[int, set[str]] = {}

    def shingled(i: int) -> set[str]:
        if i not in sets:
            sets[i] = shingles(docs[i].text, k)
        return sets[i]

    true = np.array([jaccard(shingled(i), shingled(j)) for i, j, _ in pairs])
    est = np.array([estimated_jaccard(signatures[i], signatures[j]) for i, j, _ in pairs])
    return JaccardCheck(tuple(p[2] for p in pairs), true, est)


# ---- stage 6: personal data ----------------------------------------------------------------


def mask_pii(text: str) -> tuple[str, int]:
    """E-mail addresses, phone numbers and IPv4 addresses replaced by placeholders."""
    count = 0
    for pattern, tag in ((EMAIL, "[EMAIL]"), (IPV4, "[IP]")):
        text, n = pattern.subn(tag, text)
        count += n
    found = 0

    def phone(m: re.Match) -> str:
        nonlocal found
        if sum(c.isdigit() for c in m.group()) < MIN_PHONE_DIGITS:
            return m.group()
        found += 1
        return "[PHONE]"

    text = PHONE.sub(phone, text)
    return text, count + found


# ---- the pipeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class DocStats:
    """Everything the rule stages measure on one document: independent of the thresholds, so
    moving a slider only re-compares numbers."""

    language: tuple[str, float]
    quality: dict[str, float]
    repetition: dict[str, float]


def doc_stats(text: str) -> DocStats:
    return DocStats(language_of(text), quality_stats(text), repetition_stats(text))


@dataclass(frozen=True)
class Dropped:
    doc_id: int
    stage: str
    reason: str


@dataclass(frozen=True)
class PipelineResult:
    kept: tuple[tuple[int, ...], ...]  # ids still in after each stage of STAGES
    dropped: tuple[Dropped, ...]
    masked: tuple[tuple[int, str, int], ...]  # (id, masked text, placeholders) where PII was
    candidate_pairs: int  # LSH candidates among the documents reaching near dedup


def _filter_stage(
    docs: Sequence[Doc], stage: str, reason: Callable[[Doc], str | None], dropped: list[Dropped]
) -> list[Doc]:
    kept = []
    for d in docs:
        why = reason(d)
        if why is None:
            kept.append(d)
        else:
            dropped.append(Dropped(d.id, stage, why))
    return kept


def run_pipeline(
    docs: Sequence[Doc],
    t: Thresholds,
    signatures: np.ndarray | None = None,
    stats: Sequence[DocStats] | None = None,
) -> PipelineResult:
    """Every stage in order; `signatures` and `stats` (one per doc, in order) may be
    precomputed, since neither depends on the thresholds."""
    if signatures is None:
        signatures = minhash_signatures((shingles(d.text, t.shingle) for d in docs), t.num_perm)
    if stats is None:
        stats = [doc_stats(d.text) for d in docs]
    row_of = {d.id: i for i, d in enumerate(docs)}
    st_of = {d.id: s for d, s in zip(docs, stats, strict=True)}
    dropped: list[Dropped] = []
    kept = [tuple(d.id for d in docs)]
    cur = _filter_stage(
        docs, "language", lambda d: language_reason(d.text, t, st_of[d.id].language), dropped
    )
    kept.append(tuple(d.id for d in cur))
    cur = _filter_stage(
        cur, "quality", lambda d: quality_reason(d.text, t, st_of[d.id].quality), dropped
    )
    kept.append(tuple(d.id for d in cur))
    cur = _filter_stage(
        cur, "repetition", lambda d: repetition_reason(d.text, t, st_of[d.id].repetition), dropped
    )
    kept.append(tuple(d.id for d in cur))
    dups = exact_duplicates([d.text for d in cur])
    dropped += [
        Dropped(cur[i].id, "exact dedup", f"same text as document {cur[j].id}")
        for i, j in dups.items()
    ]
    cur = [d for i, d in enumerate(cur) if i not in dups]
    kept.append(tuple(d.id for d in cur))
    sub = signatures[[row_of[d.id] for d in cur]]
    candidates = lsh_candidates(sub, t.bands)
    near = near_duplicates(sub, t.bands, t.jaccard, candidates)
    dropped += [
        Dropped(cur[i].id, "near dedup", f"estimated Jaccard {est:.2f} with document {cur[j].id}")
        for i, (j, est) in near.items()
    ]
    cur = [d for i, d in enumerate(cur) if i not in near]
    kept.append(tuple(d.id for d in cur))
    masked = []
    for d in cur:
        text, n = mask_pii(d.text)
        if n:
            masked.append((d.id, text, n))
    return PipelineResult(tuple(kept), tuple(dropped), tuple(masked), len(candidates))


# ---- how well each stage caught what it targets ---------------------------------------------


@dataclass(frozen=True)
class RecallRow:
    kind: str
    injected: int
    caught: int  # dropped by the stage meant for it (masked, for PII)
    dropped_any: int  # dropped by any stage
    target: str

    @property
    def recall(self) -> float:
        return self.caught / self.injected if self.injected else float("nan")


def recall_table(docs: Sequence[Doc], result: PipelineResult) -> tuple[RecallRow, ...]:
    by_id = {d.id: d for d in docs}
    stage_of = {x.doc_id: x.stage for x in result.dropped}
    masked = {i: text for i, text, _ in result.masked}
    rows = []
    targets = TARGET_STAGE | {
        "near_dup": "exact dedup|near dedup",
        "pii": "masked",
        "clean": "none (false positives)",
    }
    for kind in KINDS:
        ids = [d.id for d in docs if d.kind == kind]
        if kind == "pii":  # caught when every injected e-mail and phone is gone from the text
            caught = sum(i in masked and not any(p in masked[i] for p in by_id[i].pii) for i in ids)
        else:
            caught = sum(stage_of.get(i, "") in targets[kind].split("|") for i in ids)
        rows.append(
            RecallRow(kind, len(ids), caught, sum(i in stage_of for i in ids), targets[kind])
        )
    return tuple(rows)


# ---- mixtures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixRow:
    source: str
    share: float  # of the budget
    tokens: float  # drawn from this source
    available: int  # unique tokens this source has after filtering
    epochs: float  # how many times each of its tokens is seen


def mixture_plan(
    available: dict[str, int], weights: dict[str, float], budget: float
) -> tuple[MixRow, ...]:
    """Split a token budget by weight; epochs = tokens wanted / tokens the source has."""
    total = sum(max(w, 0.0) for w in weights.values())
    rows = []
    for source, have in available.items():
        share = max(weights.get(source, 0.0), 0.0) / total if total > 0 else 0.0
        tokens = budget * share
        epochs = tokens / have if have else (math.inf if tokens else 0.0)
        rows.append(MixRow(source, share, tokens, have, epochs))
    return tuple(rows)


# ---- model-based filtering: an LM and a character n-gram model -----------------------------


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
