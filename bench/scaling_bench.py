"""Page 15: the mini scaling sweep's time against the estimate its button shows."""

from __future__ import annotations

import time

from bench.common import Row, note


def rows(steps: int = 100) -> list[Row]:
    from core import pretraining_loop as pt
    from core import scaling as sc
    from core.layers import toy_threads

    corpus = pt.char_corpus()
    estimate = 0.0
    for n_layer, d_model in sc.SWEEP_SIZES:
        cfg = sc.sweep_config(n_layer, d_model, steps)
        model = pt.TinyGPT(
            pt.GPTConfig(corpus.vocab_size, cfg.context, n_layer, cfg.n_head, d_model)
        )
        estimate += pt.training_estimate_s(pt.parameter_count(model), cfg)
    note(f"scaling: the mini sweep, 5 models x {steps} steps")
    t = time.perf_counter()
    with toy_threads():
        result = sc.scaling_sweep(corpus, steps)
    took = time.perf_counter() - t
    start = time.perf_counter()
    for c in (1e19, 1e21, 1e23, 1e25):
        sc.CHINCHILLA.optimal(c)
    calc = time.perf_counter() - start
    return [
        Row(
            f"Mini scaling sweep (page 15): 5 models x {steps} steps",
            f"{took:.1f} s",
            f"button estimate: {estimate:.1f} s",
            f"{took / estimate:.2f}",
        ),
        Row(
            "Mini scaling sweep (page 15): fitted frontier exponent",
            f"L = {result.law.coefficient:.2f} C^-{result.law.exponent:.3f}",
            f"{len(result.frontier)} frontier points",
        ),
        Row("Chinchilla optimum (page 15): 4 budgets", f"{calc * 1e6:.0f} µs"),
    ]
