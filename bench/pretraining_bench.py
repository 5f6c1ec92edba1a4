"""Page 14: training steps per second of the tiny GPT at the page's defaults."""

from __future__ import annotations

import time

from bench.common import Row, note


def _steps_per_s(corpus, cfg, model, steps: int) -> tuple[float, float]:
    """(first step seconds, steady steps per second) for `steps` AdamW steps."""
    import torch

    from core import pretraining_loop as pt

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        x, y = pt.get_batch(corpus.train, cfg.batch_size, cfg.context, g)
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    steady = sorted(times[1:])[len(times[1:]) // 2]
    return times[0], 1.0 / steady


def rows(steps: int = 30) -> list[Row]:
    import torch

    from core import pretraining_loop as pt
    from core.runtime.models import load_embedded

    corpus = pt.bpe_corpus(load_embedded().tokenizer)
    cfg = pt.TrainConfig()
    tokens = cfg.batch_size * cfg.context
    saved = torch.get_num_threads()
    result = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            note(f"pretraining: {steps} default steps on {threads} thread(s)")
            result[threads] = _steps_per_s(corpus, cfg, pt.make_model(corpus, cfg), steps)
    finally:
        torch.set_num_threads(saved)
    (first1, one), (_, two) = result[1], result[2]
    n = pt.parameter_count(pt.make_model(corpus, cfg))
    return [
        Row(
            f"Pre-training loop (page 14): default step ({n:,} params, {tokens} tokens), 1 thread",
            f"{one:.2f} steps/s = {one * tokens:,.0f} tokens/s",
            f"2 threads: {two:.2f} steps/s",
            f"{one / two:.2f}",
        ),
        Row(
            "Pre-training loop (page 14): steady step vs first step (1 thread)",
            f"{1 / one:.3f} s",
            f"first step: {first1:.3f} s",
            f"{first1 * one:.2f}",
        ),
        Row(
            "Pre-training loop (page 14): default run estimate shown on the button",
            f"{pt.training_estimate_s(n, cfg):.0f} s",
            f"measured steps alone: {cfg.steps / one:.0f} s",
            f"{pt.training_estimate_s(n, cfg) * one / cfg.steps:.2f}",
        ),
    ]
