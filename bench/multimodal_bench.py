"""Page 24: mini-CLIP training speed per patch size, one thread against two."""

from __future__ import annotations

import time

import torch

from bench.common import Row, note, page_first_render


def _train(cfg, vectors):
    from core import multimodal as mm

    t0 = time.perf_counter()
    result = mm.train_mini_clip(cfg, vectors)
    return result, time.perf_counter() - t0


def rows() -> list[Row]:
    from components.multimodal import MS_PER_STEP
    from core import multimodal as mm
    from core.embeddings import sentence_embeddings
    from core.layers import toy_threads
    from core.runtime.models import load_encoder

    vectors = sentence_embeddings(load_encoder(), list(mm.all_captions()))
    out = []
    for patch in mm.PATCH_SIZES:
        cfg = mm.ClipConfig(patch=patch, steps=300)
        with toy_threads():
            result, s1 = _train(cfg, vectors)
        out.append(
            Row(
                f"p24 mini-CLIP 300 steps, patch {patch} ({(8 // patch) ** 2} tokens), 1 thread",
                f"{s1:.1f} s ({1000 * s1 / 300:.0f} ms/step)",
                f"page estimate {MS_PER_STEP[patch]:.0f} ms/step",
                f"{1000 * s1 / 300 / MS_PER_STEP[patch]:.1f}x",
                target="zero-shot > 0.10 (chance)",
                met="yes" if result.accuracy > 0.1 else "NO",
            )
        )
        note(f"patch {patch}: zero-shot {result.accuracy:.3f}, T {result.temperature:.4f}")
    saved = torch.get_num_threads()
    cfg = mm.ClipConfig(patch=2, steps=40)
    try:
        torch.set_num_threads(2)
        _, s2 = _train(cfg, vectors)
    finally:
        torch.set_num_threads(saved)
    with toy_threads():
        _, s1 = _train(cfg, vectors)
    out.append(
        Row(
            "p24 mini-CLIP 40 steps, patch 2, 1 thread (toy_threads)",
            f"{s1:.1f} s",
            f"2 threads {s2:.1f} s",
            f"{s2 / s1:.1f}x faster on one",
        )
    )
    cold, warm = page_first_render("pages/24_multimodal.py")
    out.append(
        Row(
            "p24 first render (AppTest, page caches cold, models loaded)",
            f"{cold:.2f} s",
            f"warm rerender {warm:.2f} s",
            f"{cold / warm:.1f}x",
        )
    )
    return out
