"""Fast mode (page 18): int8 linear layers against float32, speed and agreement, same run.

Agreement is measured on a fixed set of prompts: both models decode greedily through the app's
one door (`generate_stream`), and we count the positions where they chose the same token, and
how many tokens they share before they first differ. Speed is one learner's decode rate
(tokens/s after the first token) for each model on the same prompts. Memory is the RSS the
int8 copy adds to a process that already holds the float32 model.
"""

from __future__ import annotations

import time

from bench.common import Row, mb, note, process_rss

NEW_TOKENS = 32
PROMPTS = (
    "The capital of France is",
    "Write one sentence about the sea:",
    "def fibonacci(n):",
    "Photosynthesis is the process by which",
    "Three tips for learning a new language:",
    "The first law of thermodynamics says",
    "Once upon a time, in a small village,",
    "SELECT name FROM users WHERE",
)


def _greedy(lm, prompt: str) -> tuple[list[int], float]:
    """Greedy tokens and the decode rate (tokens/s after the first)."""
    from core.runtime.generation import DecodingSettings, generate_stream

    ids = lm.tokenizer(prompt)["input_ids"]
    s = DecodingSettings(temperature=0.0, max_new_tokens=NEW_TOKENS, stop_at_eos=False)
    out, first = [], 0.0
    for step in generate_stream(lm, ids, s):
        if not out:
            first = time.perf_counter()
        out.append(step.token_id)
    rate = (len(out) - 1) / max(time.perf_counter() - first, 1e-9)
    return out, rate


def rows() -> list[Row]:
    from core.inference_loop import agreeing_prefix
    from core.runtime.models import load_embedded
    from core.runtime.quantize import int8_variant

    lm = load_embedded()
    _greedy(lm, PROMPTS[0])  # warm up
    before = process_rss()
    note("fast mode: quantising the linear layers to int8")
    t0 = time.perf_counter()
    lm8 = int8_variant(lm)
    quantise_s = time.perf_counter() - t0
    added = process_rss() - before
    _greedy(lm8, PROMPTS[0])
    same = total = prefix = 0
    rates32, rates8 = [], []
    for p in PROMPTS:
        note(f"fast mode: {p!r}")
        a, r32 = _greedy(lm, p)
        b, r8 = _greedy(lm8, p)
        rates32.append(r32)
        rates8.append(r8)
        same += sum(x == y for x, y in zip(a, b))
        total += min(len(a), len(b))
        prefix += agreeing_prefix(a, b)
    r32, r8 = sum(rates32) / len(rates32), sum(rates8) / len(rates8)
    return [
        Row(
            f"Fast mode (int8 linear layers), one learner decoding {NEW_TOKENS} tokens, "
            f"mean of {len(PROMPTS)} prompts",
            f"{r8:.1f} tok/s",
            f"float32: {r32:.1f} tok/s",
            f"{r8 / r32:.2f}x",
        ),
        Row(
            f"Fast mode: greedy tokens identical to float32 ({len(PROMPTS)} fixed prompts x "
            f"{NEW_TOKENS})",
            f"{same / total:.0%} of positions ({same}/{total})",
            f"tokens shared before the first difference: {prefix / len(PROMPTS):.1f} of "
            f"{NEW_TOKENS} on average",
        ),
        Row(
            "Fast mode: memory the int8 copy adds (float32 model already loaded)",
            mb(added),
            f"float32 model: {mb(sum(p.numel() * p.element_size() for p in lm.model.parameters()))}",
            f"quantised in {quantise_s:.1f} s",
        ),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(rows()))
