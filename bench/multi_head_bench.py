"""Page 09's head-role probe: several seeds in one batched forward pass, against one seed alone
(what the page measured before) and against the same seeds one pass each."""

from __future__ import annotations

import time

from bench.common import Row, seconds


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rows() -> list[Row]:
    from core import multi_head as MH
    from core.runtime.models import load_embedded

    model = load_embedded().model
    seeds = MH.INDUCTION_SEEDS
    batched = _best(lambda: MH.head_roles(model))
    one = _best(lambda: MH.induction_scores(model, half=24, seed=0))  # the page before: 48 tokens
    separate = _best(lambda: [MH.induction_scores(model, seed=s) for s in range(seeds)], 1)
    return [
        Row(
            f"page 09 head roles, {seeds} seeds in one batch",
            seconds(batched),
            f"one 24-token sequence repeated: {seconds(one)}",
            f"{batched / one:.1f}x",
        ),
        Row(
            f"page 09 head roles, {seeds} seeds one pass each",
            seconds(separate),
            f"batched: {seconds(batched)}",
            f"{separate / batched:.1f}x",
        ),
    ]


if __name__ == "__main__":
    for r in rows():
        print(r)
