"""Page 25: first render, and the cost of a generated probe against a logits-only probe."""

from __future__ import annotations

import time

from bench.common import Row, note, seconds
from bench.prompting_bench import first_render


def rows() -> list[Row]:
    from core import limits as L
    from core.runtime.models import load_embedded

    lm = load_embedded()
    note(
        "page 25: letter-counting probe (greedy answers) against the pronoun probe (one read each)"
    )
    t = time.perf_counter()
    counting = L.probe_counting(lm)
    counting_s = time.perf_counter() - t
    t = time.perf_counter()
    L.probe_pronouns(lm)
    pronouns_s = time.perf_counter() - t
    per_word = counting_s / len(counting.words)
    per_occupation = pronouns_s / len(L.OCCUPATIONS)
    out = [
        Row(
            "Page 25: letter-counting probe, 10 words, greedy answers (<= 6 tokens)",
            f"{seconds(counting_s)} ({seconds(per_word)} per question)",
            f"pronoun probe, 14 single reads: {seconds(pronouns_s)} "
            f"({seconds(per_occupation)} per read)",
            f"{per_word / per_occupation:.1f}x per item",
        ),
    ]
    render = first_render("pages/25_limits.py")
    out.append(
        Row("Page 25: first render (AppTest, model warm, seven probes drawn)", seconds(render))
    )
    return out
