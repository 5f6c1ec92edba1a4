"""Mixtures: a token budget split between sources by weight, and the epochs each source needs."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
