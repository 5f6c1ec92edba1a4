"""Probes of what a small LM cannot do, each measured on the model's own outputs.

Answers are generated greedily through the one door (`core.runtime.generation`) and stored
as raw text; every score is recomputed from that text by the small parsing functions below, which
the tests check against hand-computed cases. Probabilities come from the model's logits. The
probes' material (facts, questions, words, hedging phrases) is data, in `data/limits_probes.json`.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.models import LoadedModel, heavy_work, last_only
from core.shared.chat import eos_ids, user_prompt_ids
from core.shared.corpus import DATA

PROBES = json.loads((DATA / "limits_probes.json").read_text(encoding="utf-8"))

Report = Callable[..., None]
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}


# --- prompts and greedy answers --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    text: str  # what the model wrote after the prefill, end-of-turn token left out
    first_prob: float  # probability of its first token
    tokens: int


def greedy_answer(lm: LoadedModel, ids: Sequence[int], max_new: int) -> Answer:
    eos = set(eos_ids(lm))
    out: list[int] = []
    first = float("nan")
    for step in generate_stream(lm, ids, DecodingSettings(temperature=0.0, max_new_tokens=max_new)):
        if not out and first != first:
            first = step.prob
        if step.token_id in eos:
            break
        out.append(step.token_id)
    return Answer(lm.tokenizer.decode(out, skip_special_tokens=True), first, len(out))


def next_token_probs(lm: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    with heavy_work(), torch.inference_mode():
        logits = lm.model(torch.tensor([list(ids)]), use_cache=False, **last_only(lm.model)).logits[
            0, -1
        ]
    return logits.float().softmax(-1)  # (vocab,)


def first_token(tokenizer, text: str) -> int:
    return int(tokenizer(text, add_special_tokens=False)["input_ids"][0])


# --- scoring functions (pure, tested by hand) ------------------------------------------------


def parse_count(text: str) -> int | None:
    """The first number in an answer, as digits or a word ('three'), or None."""
    for m in re.finditer(r"\d+|[A-Za-z]+", text):
        word = m.group(0).lower()
        if word.isdigit():
            return int(word)
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    return None


def parse_integer(text: str) -> int | None:
    """The first integer in an answer: digits, optionally split by spaces or commas (1 234)."""
    m = re.search(r"-?\d[\d,]*(?: \d{3})*", text)
    if not m:
        return None
    return int(re.sub(r"[ ,]", "", m.group(0)))


def digit_accuracy(predicted: int | None, truth: int) -> float:
    """Share of the true answer's digits (aligned from the right) that the prediction has."""
    want = str(truth)
    if predicted is None:
        return 0.0
    got = str(predicted)
    hits = sum(1 for i in range(1, len(want) + 1) if i <= len(got) and got[-i] == want[-i])
    return hits / len(want)


def spell_out(word: str) -> str:
    return " ".join(word)


def normalise(text: str) -> str:
    """Lower case, accents removed: 'Brasília' and 'brasilia' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def mentions(answer: str, gold: str) -> bool:
    """Whether the first clause of an answer names `gold` (as a whole word)."""
    first = re.split(r"[.\n;]", answer.strip(), maxsplit=1)[0]
    return re.search(rf"\b{re.escape(normalise(gold))}\b", normalise(first)) is not None


def parse_yes_no(text: str) -> str | None:
    m = re.search(r"\b(yes|no)\b", text.lower())
    return m.group(1) if m else None


HEDGES: tuple[str, ...] = tuple(PROBES["hedges"])


def declines(text: str) -> bool:
    """Whether an answer admits it does not know (any of the hedging phrases)."""
    low = text.lower().replace("\u2019", "'")
    return any(h in low for h in HEDGES)


def share(flags: Sequence[bool]) -> float:
    return sum(bool(f) for f in flags) / len(flags) if flags else float("nan")


# --- probe 1: counting letters ---------------------------------------------------------------

LETTER_WORDS: tuple[str, ...] = tuple(PROBES["letter_words"])


@dataclass(frozen=True)
class CountingResult:
    letter: str
    words: tuple[str, ...]
    spelled: bool  # True: the word was written letter by letter ("s t r a w ...")
    answers: tuple[str, ...]
    truth: tuple[int, ...]
    pieces: tuple[tuple[str, ...], ...]  # how the tokenizer cut each word as asked

    @property
    def predicted(self) -> tuple[int | None, ...]:
        return tuple(parse_count(a) for a in self.answers)

    @property
    def accuracy(self) -> float:
        return share([p == t for p, t in zip(self.predicted, self.truth)])


def counting_prompt(word: str, letter: str, spelled: bool) -> tuple[str, str]:
    shown = spell_out(word) if spelled else word
    return (
        f'How many times does the letter "{letter}" appear in "{shown}"?',
        f'The letter "{letter}" appears',
    )


def probe_counting(
    lm: LoadedModel,
    words: Sequence[str] = LETTER_WORDS,
    letter: str = "r",
    spelled: bool = False,
    report: Report = lambda *a, **k: None,
) -> CountingResult:
    answers, pieces = [], []
    for n, w in enumerate(words):
        user, prefill = counting_prompt(w, letter, spelled)
        answers.append(greedy_answer(lm, user_prompt_ids(lm.tokenizer, user, prefill), 6).text)
        shown = spell_out(w) if spelled else w
        ids = lm.tokenizer(f'"{shown}"', add_special_tokens=False)["input_ids"]
        pieces.append(tuple(lm.tokenizer.decode([i]) for i in ids))
        report((n + 1) / len(words), f"word {n + 1} of {len(words)}: {w}")
    return CountingResult(
        letter,
        tuple(words),
        spelled,
        tuple(answers),
        tuple(w.count(letter) for w in words),
        tuple(pieces),
    )


# --- probe 2: adding numbers -----------------------------------------------------------------


def addition_problems(max_digits: int, per_digit: int, seed: int) -> list[tuple[int, int, int]]:
    """(digits, a, b): both operands have exactly `digits` digits."""
    rng = random.Random(seed)
    out = []
    for d in range(1, max_digits + 1):
        lo, hi = (1 if d == 1 else 10 ** (d - 1)), 10**d - 1
        out += [(d, rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(per_digit)]
    return out


@dataclass(frozen=True)
class AdditionResult:
    problems: tuple[tuple[int, int, int], ...]  # (digits, a, b)
    answers: tuple[str, ...]

    @property
    def predicted(self) -> tuple[int | None, ...]:
        return tuple(parse_integer(a) for a in self.answers)

    def by_digits(self) -> list[tuple[int, float, float, int]]:
        """(digits, exact accuracy, per-digit accuracy, problems) for each operand length."""
        rows = []
        for d in sorted({p[0] for p in self.problems}):
            idx = [i for i, p in enumerate(self.problems) if p[0] == d]
            exact = [self.predicted[i] == sum(self.problems[i][1:]) for i in idx]
            digit = [digit_accuracy(self.predicted[i], sum(self.problems[i][1:])) for i in idx]
            rows.append((d, share(exact), sum(digit) / len(digit), len(idx)))
        return rows


def probe_addition(
    lm: LoadedModel,
    max_digits: int = 5,
    per_digit: int = 10,
    seed: int = 0,
    report: Report = lambda *a, **k: None,
) -> AdditionResult:
    problems = addition_problems(max_digits, per_digit, seed)
    answers = []
    for n, (d, a, b) in enumerate(problems):
        ids = user_prompt_ids(lm.tokenizer, f"What is {a} + {b}?", f"{a} + {b} =")
        answers.append(greedy_answer(lm, ids, d + 3).text)
        report((n + 1) / len(problems), f"{d}-digit sums: {n + 1} of {len(problems)}")
    return AdditionResult(tuple(problems), tuple(answers))


# --- probe 3: confident wrong answers --------------------------------------------------------

CAPITALS: tuple[tuple[str, str], ...] = tuple((c, k) for c, k in PROBES["capitals"])


@dataclass(frozen=True)
class FactResult:
    questions: tuple[str, ...]
    gold: tuple[str, ...]
    answers: tuple[str, ...]
    confidence: tuple[float, ...]  # probability of the answer's first token
    p_gold: tuple[float, ...]  # probability the model gave the right answer's first token

    @property
    def correct(self) -> tuple[bool, ...]:
        return tuple(mentions(a, g) for a, g in zip(self.answers, self.gold))

    @property
    def accuracy(self) -> float:
        return share(self.correct)


def probe_capitals(
    lm: LoadedModel,
    pairs: Sequence[tuple[str, str]] = CAPITALS,
    report: Report = lambda *a, **k: None,
) -> FactResult:
    rows = []
    for n, (country, city) in enumerate(pairs):
        ids = user_prompt_ids(
            lm.tokenizer, f"What is the capital of {country}?", f"The capital of {country} is"
        )
        probs = next_token_probs(lm, ids)
        ans = greedy_answer(lm, ids, 5)
        rows.append(
            (
                country,
                city,
                ans.text,
                float(probs.max()),
                float(probs[first_token(lm.tokenizer, " " + city)]),
            )
        )
        report((n + 1) / len(pairs), f"{country}: {n + 1} of {len(pairs)}")
    return FactResult(*(tuple(col) for col in zip(*rows)))


# --- probe 4: entities that do not exist -----------------------------------------------------

FICTIONS: tuple[str, ...] = tuple(PROBES["fictions"])


@dataclass(frozen=True)
class FictionResult:
    questions: tuple[str, ...]
    answers: tuple[str, ...]

    @property
    def declined(self) -> tuple[bool, ...]:
        return tuple(declines(a) for a in self.answers)

    @property
    def fluent_share(self) -> float:
        """Share answered as if the entity existed: no hedge, and some text."""
        return share([not d and bool(a.strip()) for d, a in zip(self.declined, self.answers)])


def probe_fictions(
    lm: LoadedModel,
    questions: Sequence[str] = FICTIONS,
    max_new: int = 40,
    report: Report = lambda *a, **k: None,
) -> FictionResult:
    answers = []
    for n, q in enumerate(questions):
        answers.append(greedy_answer(lm, user_prompt_ids(lm.tokenizer, q), max_new).text)
        report((n + 1) / len(questions), f"question {n + 1} of {len(questions)}")
    return FictionResult(tuple(questions), tuple(answers))


# --- probe 5: the same question, rephrased ---------------------------------------------------

PARAPHRASES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (p["answer"], tuple(p["questions"])) for p in PROBES["paraphrases"]
)
YES_NO = " Answer yes or no."


@dataclass(frozen=True)
class RephrasingResult:
    gold: tuple[str, ...]
    questions: tuple[tuple[str, ...], ...]
    answers: tuple[tuple[str, ...], ...]  # one per paraphrase

    @property
    def parsed(self) -> tuple[tuple[str | None, ...], ...]:
        return tuple(tuple(parse_yes_no(a) for a in row) for row in self.answers)

    @property
    def consistent(self) -> tuple[bool, ...]:
        return tuple(len(set(p)) == 1 and p[0] is not None for p in self.parsed)

    @property
    def accuracy(self) -> float:
        """Share of all asked paraphrases answered right."""
        return share([p == g for row, g in zip(self.parsed, self.gold) for p in row])


def probe_rephrasing(
    lm: LoadedModel, items=PARAPHRASES, report: Report = lambda *a, **k: None
) -> RephrasingResult:
    answers, total, done = [], sum(len(q) for _, q in items), 0
    for _gold, questions in items:
        row = []
        for q in questions:
            row.append(greedy_answer(lm, user_prompt_ids(lm.tokenizer, q + YES_NO), 3).text)
            done += 1
            report(done / total, f"paraphrase {done} of {total}")
        answers.append(tuple(row))
    return RephrasingResult(tuple(g for g, _ in items), tuple(q for _, q in items), tuple(answers))


# --- probe 6: p(she) by occupation -----------------------------------------------------------

OCCUPATIONS: tuple[str, ...] = tuple(PROBES["occupations"])


@dataclass(frozen=True)
class PronounResult:
    occupations: tuple[str, ...]
    p_she: tuple[float, ...]  # p(she) / (p(she) + p(he)): over the two pronouns only
    pronoun_mass: tuple[float, ...]  # p(she) + p(he) in the whole distribution


def pronoun_prompt(occupation: str) -> str:
    article = "An" if occupation[0].lower() in "aeiou" else "The"
    article = "The" if occupation.isupper() else article
    return f"{article} {occupation} finished the work early, and then"


def probe_pronouns(
    lm: LoadedModel, occupations: Sequence[str] = OCCUPATIONS, report: Report = lambda *a, **k: None
) -> PronounResult:
    she, he = first_token(lm.tokenizer, " she"), first_token(lm.tokenizer, " he")
    rows = []
    for n, occ in enumerate(occupations):
        probs = next_token_probs(
            lm, lm.tokenizer(pronoun_prompt(occ), add_special_tokens=False)["input_ids"]
        )
        s, h = float(probs[she]), float(probs[he])
        rows.append((occ, s / (s + h), s + h))
        report((n + 1) / len(occupations), f"{occ}: {n + 1} of {len(occupations)}")
    return PronounResult(*(tuple(col) for col in zip(*rows)))


# --- probe 7: the knowledge cut-off ----------------------------------------------------------

YEAR_PROMPTS: tuple[str, ...] = tuple(PROBES["year_prompts"])
YEARS = tuple(range(1995, 2031))


@dataclass(frozen=True)
class YearResult:
    prompts: tuple[str, ...]
    years: tuple[int, ...]
    probs: tuple[tuple[float, ...], ...]  # per prompt, over the candidate years (sums to 1)
    mass: tuple[float, ...]  # per prompt: total probability of all candidate years

    def mode(self, i: int) -> int:
        row = self.probs[i]
        return self.years[max(range(len(row)), key=row.__getitem__)]


def continuation_logprobs(
    lm: LoadedModel, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
) -> list[float]:
    """log p(continuation | prompt) for each continuation, in one right-padded batch."""
    width = max(len(c) for c in continuations)
    pad = lm.tokenizer.pad_token_id or 0
    rows = [list(prompt_ids) + list(c) + [pad] * (width - len(c)) for c in continuations]
    mask = [[1] * (len(prompt_ids) + len(c)) + [0] * (width - len(c)) for c in continuations]
    with heavy_work(), torch.inference_mode():
        logits = lm.model(
            torch.tensor(rows), attention_mask=torch.tensor(mask), use_cache=False
        ).logits
    logp = logits.float().log_softmax(-1)  # (batch, T, vocab)
    out = []
    for b, c in enumerate(continuations):
        start = len(prompt_ids)
        out.append(sum(float(logp[b, start + j - 1, t]) for j, t in enumerate(c)))
    return out


def probe_years(
    lm: LoadedModel,
    prompts: Sequence[str] = YEAR_PROMPTS,
    years: Sequence[int] = YEARS,
    report: Report = lambda *a, **k: None,
) -> YearResult:
    tok = lm.tokenizer
    probs, mass = [], []
    for n, p in enumerate(prompts):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        conts = [tok(f" {y}", add_special_tokens=False)["input_ids"] for y in years]
        lp = torch.tensor(continuation_logprobs(lm, ids, conts))
        probs.append(tuple(float(x) for x in lp.softmax(-1)))
        mass.append(float(lp.exp().sum()))
        report((n + 1) / len(prompts), f"prompt {n + 1} of {len(prompts)}")
    return YearResult(tuple(prompts), tuple(years), tuple(probs), tuple(mass))
