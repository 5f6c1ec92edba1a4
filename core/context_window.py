"""The context window (page 20), measured on the model: forward cost against sequence length,
truncation of a prompt to a token budget, and a needle-in-a-haystack probe."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from core.inference_loop import (
    cache_tensor_bytes,
    context_length,
    kv_cache_bytes,
    model_dtype_bytes,
)
from core.inspect.anatomy import geometry
from core.inspect.hooks import Hook, scoped_hooks
from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.models import LoadedModel, heavy_work
from core.shared.chat import user_prompt_ids

FORWARD_CAP = 2048  # longest sequence the forward-cost sweep runs
NEEDLE_LENGTH_CAP = 2048  # longest haystack in the needle probe
NEEDLE_TRIALS_CAP = 24  # lengths x depths
NEEDLE_NEW_TOKENS = 8  # enough for a 5-digit number and a full stop
NEEDLE_SEED = 0  # the page's probe: every trial's key, secret and distractors come from it


# --- forward cost against sequence length ----------------------------------------------------


@contextmanager
def attention_score_bytes(model: Any) -> Iterator[list[int]]:
    """Record the bytes of each attention layer's score matrix during one forward pass.

    Eager attention builds (batch, heads, T, T) weights per layer and frees them; the hooks
    only read their size and are removed however the block exits (the model is shared).
    """
    sizes: list[int] = []

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, tuple) and len(output) > 1 and torch.is_tensor(output[1]):
            if output[1].dim() == 4:
                sizes.append(output[1].numel() * output[1].element_size())

    # every family names its attention class "...Attention"; anatomy knows only two layouts
    # by heart, and this measure needs only the module's returned weights
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    with scoped_hooks(*(Hook(m, "forward", hook) for m in modules)):
        yield sizes


def attention_scores_formula(config: Any, tokens: int, dtype_bytes: int = 4) -> int:
    """One layer's score matrix: heads x T x T numbers (the part that grows as n²)."""
    return geometry(config).n_heads * int(tokens) ** 2 * dtype_bytes


@dataclass(frozen=True)
class ForwardCost:
    tokens: int
    seconds: float
    scores_bytes: int  # measured: largest attention score matrix of any layer
    scores_formula: int
    kv_bytes: int  # measured: the cache tensors returned
    kv_formula: int


def forward_cost(lm: LoadedModel, input_ids: Sequence[int]) -> ForwardCost:
    """One full forward pass over the ids: wall time and the memory of what grows with T."""
    ids = torch.tensor([list(input_ids)[:FORWARD_CAP]])  # (1, T)
    t = ids.shape[1]
    width = model_dtype_bytes(lm.model)
    with heavy_work(), torch.inference_mode(), attention_score_bytes(lm.model) as sizes:
        start = time.perf_counter()
        out = lm.model(ids, use_cache=True)
        seconds = time.perf_counter() - start
        kv = cache_tensor_bytes(out.cache)
    return ForwardCost(
        t,
        seconds,
        max(sizes, default=0),
        attention_scores_formula(lm.config, t, width),
        kv,
        kv_cache_bytes(lm.config, t, width),
    )


def sweep_lengths(context_length: int, longest: int = 1024) -> tuple[int, ...]:
    """32, 64, ... up to the smaller of `longest`, the cap and the model's context."""
    top = min(longest, FORWARD_CAP, context_length)
    return tuple(n for n in (2**i for i in range(5, 12)) if n <= top)


# --- truncation -------------------------------------------------------------------------------

STRATEGIES: dict[str, str] = {
    "left": "cut from the left (keep the end)",
    "right": "cut from the right (keep the start)",
    "middle": "cut the middle (keep start and end)",
}


@dataclass(frozen=True)
class Truncation:
    kept: tuple[int, ...]  # the ids the model then sees, in order
    kept_positions: tuple[int, ...]  # their indices in the original
    dropped: int
    strategy: str


def truncate(ids: Sequence[int], budget: int, strategy: str) -> Truncation:
    """Keep exactly min(budget, len(ids)) tokens, dropping from the side the strategy names."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    n, budget = len(ids), max(0, int(budget))
    if budget >= n:
        positions = list(range(n))
    elif strategy == "left":
        positions = list(range(n - budget, n))
    elif strategy == "right":
        positions = list(range(budget))
    else:
        head = (budget + 1) // 2
        positions = list(range(head)) + list(range(n - (budget - head), n))
    return Truncation(
        tuple(int(ids[i]) for i in positions), tuple(positions), n - len(positions), strategy
    )


# --- needle in a haystack ---------------------------------------------------------------------

FILLER: tuple[str, ...] = (
    "The river flows slowly past the old mill.",
    "Farmers bring apples to the market every Tuesday.",
    "The library opens at nine and closes at six.",
    "Clouds gathered over the hills in the afternoon.",
    "A cat slept on the warm windowsill.",
    "The bakery sells fresh bread each morning.",
    "Children played football in the park after school.",
    "The train to the coast leaves from platform two.",
    "Snow fell quietly on the empty village square.",
    "The museum added a new room for old maps.",
    "A fisherman mended his nets by the harbour.",
    "The garden was full of tulips in the spring.",
)
# Every fact, the needle and its distractors alike, has one shape: "The <key> is <number>." The
# needle's key is asked for; distractors (RULER's multi-key needles) are the same shape with
# other keys and numbers, so the model has to bind the asked key to its number instead of
# copying the only number in sight.
FACT = "The {key} is {number}."
QUESTION = "What is the {key} in the text above?"
ANSWER_PREFIX = "The {key} is"
FACT_KEYS: tuple[str, ...] = (
    "bus number",
    "room number",
    "locker number",
    "ticket number",
    "order number",
    "seat number",
    "gate number",
    "house number",
    "parcel number",
    "account number",
    "lucky number",
    "table number",
)
DISTRACTORS_CAP = len(FACT_KEYS) - 1  # every fact needs a key of its own
SECRET_KEY = "secret number"  # the needle's key when none is given


@dataclass(frozen=True)
class Haystack:
    text: str
    tokens: int  # haystack length in tokens, needle and distractors included
    depth: float  # where the needle sits, 0 = start, 1 = end
    secret: str
    distractors: tuple[str, ...] = ()  # the distractor sentences, in text order
    key: str = SECRET_KEY  # what the question asks for


def draw_facts(rng: random.Random, count: int) -> tuple[str, str, tuple[str, ...]]:
    """One trial's facts from `rng`: the asked key, its 5-digit number (the secret) and `count`
    distractor sentences with distinct other keys and distinct numbers, none equal to it.
    The draws do not depend on `count`: more distractors add facts to the same trial."""
    count = max(0, min(int(count), DISTRACTORS_CAP))
    keys = rng.sample(FACT_KEYS, len(FACT_KEYS))
    secret = str(rng.randint(10000, 99999))
    numbers: list[str] = []
    while len(numbers) < DISTRACTORS_CAP:
        n = str(rng.randint(10000, 99999))
        if n != secret and n not in numbers:
            numbers.append(n)
    facts = (FACT.format(key=k, number=n) for k, n in zip(keys[1 : count + 1], numbers))
    return keys[0], secret, tuple(facts)


def haystack(
    tokenizer: Any,
    tokens: int,
    depth: float,
    secret: str,
    distractors: Sequence[str] = (),
    key: str = SECRET_KEY,
) -> Haystack:
    """Filler sentences up to `tokens` tokens in all, the distractor sentences spread evenly
    through the filler and the needle inserted at `depth`, every one at a sentence boundary."""

    def size(s: str) -> int:
        return len(tokenizer(" " + s, add_special_tokens=False)["input_ids"])

    needle = FACT.format(key=key, number=secret)
    facts = list(distractors)
    budget = max(1, tokens - size(needle) - sum(size(f) for f in facts))
    sentences: list[str] = []
    used = 0
    while used < budget:
        s = FILLER[len(sentences) % len(FILLER)]
        used += size(s)
        sentences.append(s)
    # distractor j goes after filler sentence round((j + 0.5) / m * n): evenly spread
    n, m = len(sentences), len(facts)
    slots = [round((j + 0.5) / m * n) for j in range(m)]
    body: list[str] = []
    for i in range(n + 1):
        body += [f for f, at in zip(facts, slots) if at == i]
        if i < n:
            body.append(sentences[i])
    k = round(min(1.0, max(0.0, depth)) * len(body))
    text = " ".join(body[:k] + [needle] + body[k:])
    return Haystack(
        text,
        len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        depth,
        secret,
        tuple(facts),
        key,
    )


def needle_prompt_ids(tokenizer: Any, hay: Haystack) -> list[int]:
    """The haystack and question as one chat turn (core.shared.chat). The answer is started for
    the model, so greedy decoding only has to supply the number."""
    return user_prompt_ids(
        tokenizer,
        f"{hay.text}\n\n{QUESTION.format(key=hay.key)}",
        ANSWER_PREFIX.format(key=hay.key),
    )


def first_number(answer: str) -> str | None:
    """The first number in an answer, digits joined across spaces and thousands commas
    (SmolLM2 writes digits one token each)."""
    found = re.search(r"\d+", re.sub(r"(?<=\d)[ ,](?=\d)", "", answer))
    return found.group(0) if found else None


def recalled(answer: str, secret: str) -> bool:
    """The first number in the answer is the secret."""
    return first_number(answer) == secret


def fact_number(sentence: str) -> str:
    """The number a needle or distractor sentence states."""
    return first_number(sentence) or ""


@dataclass(frozen=True)
class NeedleTrial:
    length: int  # haystack tokens asked for
    tokens: int  # haystack tokens measured
    depth: float
    secret: str
    answer: str
    found: bool
    seconds: float
    distractors: tuple[str, ...] = ()  # the distractor sentences in the haystack
    key: str = SECRET_KEY  # what the question asked for

    @property
    def picked(self) -> str | None:
        """The distractor sentence whose number the answer gave instead of the secret."""
        said = first_number(self.answer)
        return next((f for f in self.distractors if fact_number(f) == said), None)


@dataclass(frozen=True)
class NeedleProgress:
    done: int
    total: int
    trial: NeedleTrial


def needle_grid(
    lengths: Sequence[int], depths: Sequence[float], context_length: int
) -> list[tuple[int, float]]:
    """The (length, depth) trials, within the cap and leaving room for question and answer."""
    room = min(NEEDLE_LENGTH_CAP, context_length - 96)
    grid = [
        (int(n), float(d))
        for n in sorted(set(lengths))
        if 16 <= n <= room
        for d in sorted(set(depths))
    ]
    return grid[:NEEDLE_TRIALS_CAP]


def needle_haystacks(
    tokenizer: Any,
    lengths: Sequence[int],
    depths: Sequence[float],
    context_length: int,
    seed: int = 0,
    distractors: int = 0,
) -> list[Haystack]:
    """Every trial's haystack, drawn from `seed` and the trial's length and depth: a 5-digit
    secret under a key, and `distractors` similar facts with other keys and numbers. Cheap (the
    tokenizer only), so a page can build them for its estimate and the probe builds the very
    same ones."""
    hays = []
    for length, depth in needle_grid(lengths, depths, context_length):
        # one generator per trial: a trial is the same whatever else the grid holds
        rng = random.Random(f"{seed}/{length}/{depth}")
        key, secret, facts = draw_facts(rng, distractors)
        hays.append(haystack(tokenizer, length, depth, secret, facts, key))
    return hays


def needle_probe(
    lm: LoadedModel,
    lengths: Sequence[int],
    depths: Sequence[float],
    seed: int = 0,
    on_token: Callable[[int, int], None] | None = None,
    distractors: int = 0,
) -> Iterator[NeedleProgress]:
    """One greedy answer per (length, depth), yielded as it finishes so a page can show
    progress and stop early. Each trial hides a different random 5-digit number among
    `distractors` similar facts. `on_token(trial_index, tokens_so_far)` runs before the trial
    and after each new token."""
    grid = needle_grid(lengths, depths, context_length(lm.config))
    hays = needle_haystacks(
        lm.tokenizer, lengths, depths, context_length(lm.config), seed, distractors
    )
    settings = DecodingSettings(temperature=0.0, max_new_tokens=NEEDLE_NEW_TOKENS)
    special = set(lm.tokenizer.all_special_ids)
    for i, ((length, depth), hay) in enumerate(zip(grid, hays)):
        start = time.perf_counter()
        if on_token is not None:
            on_token(i, 0)
        pieces = []
        for n, step in enumerate(
            generate_stream(lm, needle_prompt_ids(lm.tokenizer, hay), settings), start=1
        ):
            if step.token_id not in special:
                pieces.append(step.text)
            if on_token is not None:
                on_token(i, n)
        answer = "".join(pieces)
        trial = NeedleTrial(
            length,
            hay.tokens,
            depth,
            hay.secret,
            answer.strip(),
            recalled(answer, hay.secret),
            time.perf_counter() - start,
            hay.distractors,
            hay.key,
        )
        yield NeedleProgress(i + 1, len(grid), trial)


def needle_trials(
    lm: LoadedModel,
    lengths: Sequence[int],
    depths: Sequence[float],
    seed: int,
    report: Callable[..., None],
    distractors: int = 0,
) -> tuple[NeedleTrial, ...]:
    """The whole probe as one job: `report(fraction, text, partial=trials so far)` runs before
    each trial and after every generated token, so a Stop (which raises inside `report`) ends
    the work within the trial it interrupts, at most one forward pass later."""
    total = max(1, len(needle_grid(lengths, depths, context_length(lm.config))))
    trials: list[NeedleTrial] = []

    def on_token(i: int, n: int) -> None:
        report(
            (i + n / (NEEDLE_NEW_TOKENS + 1)) / total,
            f"Trial {i + 1} of {total}: "
            + ("reading the haystack" if n == 0 else f"answer token {n}"),
        )

    for p in needle_probe(lm, lengths, depths, seed, on_token, distractors):
        trials.append(p.trial)
        report(
            p.done / p.total,
            f"Trial {p.done} of {p.total}: {p.trial.tokens} tokens, depth {p.trial.depth:.0%}",
            partial=tuple(trials),
        )
    return tuple(trials)


NEEDLE_PROMPT_EXTRA = 48  # tokens of question and chat template around each haystack


def needle_estimate_s(grid: Sequence[tuple[int, float]], costs: Sequence[ForwardCost]) -> float:
    """Seconds the probe should take for haystacks of (tokens, depth) (give their built lengths,
    distractors included: `needle_haystacks`), from measured forward passes: one prefill over each
    haystack (interpolated by length, extrapolated linearly past the longest measured) and
    NEEDLE_NEW_TOKENS cached steps each costing about the shortest measured pass."""
    if not costs:
        return 0.0
    pts = sorted((c.tokens, c.seconds) for c in costs)
    step = pts[0][1]
    total = 0.0
    for length, _ in grid:
        n = length + NEEDLE_PROMPT_EXTRA
        lo = max((p for p in pts if p[0] <= n), default=pts[0])
        hi = min((p for p in pts if p[0] >= n), default=pts[-1])
        if hi[0] == lo[0]:
            prefill = lo[1] * n / lo[0]
        else:
            prefill = lo[1] + (hi[1] - lo[1]) * (n - lo[0]) / (hi[0] - lo[0])
        total += prefill + NEEDLE_NEW_TOKENS * step
    return total


def filler_ids(tokenizer: Any, tokens: int) -> list[int]:
    """Exactly `tokens` ids of plain filler text, for forward-cost sweeps."""
    ids: list[int] = []
    i = 0
    while len(ids) < tokens:
        ids += tokenizer(" " + FILLER[i % len(FILLER)], add_special_tokens=False)["input_ids"]
        i += 1
    return ids[:tokens]
