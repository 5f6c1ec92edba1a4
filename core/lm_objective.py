"""The language-modelling objective: surprisal, perplexity, alternatives, a guessing game.

Training minimises the mean of -log p(token_t | tokens_<t) over the text: the surprisal of
each token. Perplexity is exp of that mean; it equals the number of equally likely choices
that would leave the model as unsure as it is on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core.inspect.trace import Trace

LN2 = math.log(2.0)

# Short passages for the game, plain enough that a reader can guess along.
GAME_TEXTS: tuple[str, ...] = (
    "Once upon a time, there was a little girl who lived in a small house near the forest. "
    "Every morning she walked to the river to fetch water for her mother.",
    "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is "
    "Madrid, and the capital of Germany is Berlin.",
    "To make a cup of tea, boil some water, put a tea bag in a cup, pour the hot water over "
    "it and wait for three minutes before you take the bag out.",
    "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return a * b\n",
)


@dataclass(frozen=True)
class Surprisal:
    tokens: tuple[str, ...]
    nats: np.ndarray  # (T-1,) -log p(token t | < t) for t = 1..T-1
    positions: np.ndarray  # (T-1,) the position t each value belongs to

    @property
    def bits(self) -> np.ndarray:
        return self.nats / LN2

    @property
    def mean_nats(self) -> float:
        """The cross-entropy loss the model is trained on, for this text."""
        return float(self.nats.mean()) if self.nats.size else float("nan")

    @property
    def mean_bits(self) -> float:
        return self.mean_nats / LN2

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nats) if self.nats.size else float("nan")


def surprisal(trace: Trace) -> Surprisal:
    """Per-token surprisal from one forward pass; the first token has no prediction."""
    lp = np.asarray(trace.token_logprobs, dtype=np.float64)[1:]  # (T-1,)
    return Surprisal(trace.tokens, -lp, np.arange(1, trace.length))


@dataclass(frozen=True)
class Alternatives:
    position: int  # the token being predicted
    actual: str
    actual_prob: float
    actual_rank: int | None  # 1-based rank in the model's top list, None if outside it
    tokens: tuple[str, ...]  # the model's top guesses for this position, best first
    probs: np.ndarray
    actual_bits: float  # surprisal of the actual token, -log2 p (exact even where p underflows)


def alternatives(trace: Trace, position: int, decoded_top: tuple[str, ...]) -> Alternatives:
    """What the model expected at `position` (>= 1), given everything before it.

    `decoded_top` is trace.top_ids[position - 1] decoded (the caller owns the tokenizer).
    """
    position = min(max(1, position), trace.length - 1)
    ids = trace.top_ids[position - 1]
    actual_id = int(trace.ids[position])
    hits = np.flatnonzero(ids == actual_id)
    return Alternatives(
        position=position,
        actual=trace.tokens[position],
        actual_prob=float(math.exp(trace.token_logprobs[position])),
        actual_rank=int(hits[0]) + 1 if hits.size else None,
        tokens=decoded_top,
        probs=np.asarray(trace.top_probs[position - 1], dtype=np.float64),
        actual_bits=float(-trace.token_logprobs[position] / LN2),
    )


# ---- guess the next token ------------------------------------------------------------------


def normalise_guess(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Round:
    position: int  # index of the token that was to be guessed
    guess: str
    actual: str
    model_guess: str
    player_right: bool
    model_right: bool
    model_prob_of_actual: float


@dataclass(frozen=True)
class GameState:
    position: int  # the next token to guess; the player sees tokens[:position]
    rounds: tuple[Round, ...] = ()

    @property
    def player_score(self) -> int:
        return sum(r.player_right for r in self.rounds)

    @property
    def model_score(self) -> int:
        return sum(r.model_right for r in self.rounds)


def new_game(trace: Trace, start: int = 4) -> GameState:
    return GameState(position=min(max(1, start), max(1, trace.length - 1)))


def game_over(state: GameState, trace: Trace) -> bool:
    return state.position >= trace.length


def play(state: GameState, trace: Trace, guess: str, model_guess: str) -> GameState:
    """Score one guess against the real next token; the model plays its top-1 guess.

    A guess counts when it equals the token with surrounding spaces and case ignored (tokens
    carry their leading space: ' Paris' is guessed by typing Paris; an empty guess stands
    for a token of only spaces or line breaks). `model_guess` is
    trace.top_ids[position - 1, 0] decoded.
    """
    if game_over(state, trace):
        return state
    pos = state.position
    actual = trace.tokens[pos]
    target = normalise_guess(actual)
    rnd = Round(
        position=pos,
        guess=guess,
        actual=actual,
        model_guess=model_guess,
        player_right=normalise_guess(guess) == target,
        model_right=int(trace.top_ids[pos - 1, 0]) == int(trace.ids[pos]),
        model_prob_of_actual=float(math.exp(trace.token_logprobs[pos])),
    )
    return replace(state, position=pos + 1, rounds=(*state.rounds, rnd))
