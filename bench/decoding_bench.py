"""Page 19's "Generate side by side": the five samplers and beam search, against transformers.

The beam search reads the prompt once and then one token per beam with a reordered KV cache;
its baseline in the same run is `model.generate(num_beams=...)` on the same prompt.
"""

from __future__ import annotations

import time

from bench.common import Row, note
from core.runtime import generation

NEW_TOKENS = 24
BEAMS = 3
PROMPT = "The best way to learn a new language is"


def rows() -> list[Row]:
    import torch

    from core import decoding as d
    from core.runtime.models import load_embedded

    lm = load_embedded()
    ids = lm.tokenizer(PROMPT)["input_ids"]
    note("decoding: beam search against generate(num_beams), then the five samplers")
    d.beam_search(lm, ids, BEAMS, 2)  # warm up

    t0 = time.perf_counter()
    ours = d.beam_search(lm, ids, BEAMS, NEW_TOKENS)
    beam_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([ids]),
            num_beams=BEAMS,
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            early_stopping=False,
            pad_token_id=lm.tokenizer.eos_token_id,
        )
    ref_s = time.perf_counter() - t0
    same = list(ours.sequences[0]) == ref[0, len(ids) :].tolist()

    samplers = {
        "greedy": generation.DecodingSettings(temperature=0.0, max_new_tokens=NEW_TOKENS, seed=0),
        "top-k 40": generation.DecodingSettings(top_k=40, max_new_tokens=NEW_TOKENS, seed=0),
        "top-p 0.8": generation.DecodingSettings(top_p=0.8, max_new_tokens=NEW_TOKENS, seed=0),
        "temperature 1.3": generation.DecodingSettings(
            temperature=1.3, max_new_tokens=NEW_TOKENS, seed=0
        ),
        "min-p 0.1": generation.DecodingSettings(min_p=0.1, max_new_tokens=NEW_TOKENS, seed=0),
    }
    t0 = time.perf_counter()
    for s in samplers.values():
        list(generation.generate_stream(lm, ids, s))
    sample_s = time.perf_counter() - t0
    return [
        Row(
            f"Page 19 beam search, {BEAMS} beams x {NEW_TOKENS} tokens (KV cache reordered "
            "by beam)",
            f"{beam_s:.2f} s",
            f"generate(num_beams={BEAMS}): {ref_s:.2f} s",
            f"{ref_s / beam_s:.2f}x",
            "best beam equals generate",
            "yes" if same else "NO",
        ),
        Row(
            f"Page 19 'Generate side by side': 5 samplers + beam, {NEW_TOKENS} tokens each",
            f"{sample_s + beam_s:.2f} s",
            f"the five samplers alone: {sample_s:.2f} s",
            f"{(sample_s + beam_s) / sample_s:.2f}x",
        ),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(rows()))
