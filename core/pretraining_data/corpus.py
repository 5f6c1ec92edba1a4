"""The sample corpus: distinct paragraphs of Python's documentation (`core.shared.corpus`) mixed
with junk of each kind a web-scale pipeline must catch, generated with a fixed seed from
hand-written material in `data/pretraining_junk.json`: exact and near duplicates, boilerplate,
spam, other languages and personal data. Every injected document keeps its label, so each step's
recall on the junk it targets is measurable."""

from __future__ import annotations

import json
import random
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from core.shared.corpus import DATA, pydoc_paragraphs

JUNK_FILE = DATA / "pretraining_junk.json"
KINDS: tuple[str, ...] = ("clean", "exact_dup", "near_dup", "boilerplate", "spam", "foreign", "pii")
SOURCES: tuple[str, ...] = ("docs prose", "docs code", "web crawl")


@dataclass(frozen=True)
class Doc:
    id: int
    text: str
    kind: str  # one of KINDS: what was injected (clean = a real documentation paragraph)
    source: str  # one of SOURCES, for the mixture
    origin: int = -1  # for duplicates: the id of the document copied
    pii: tuple[str, ...] = ()  # personal data written into the text, to check the masking


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
