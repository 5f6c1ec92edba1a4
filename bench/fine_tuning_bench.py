"""Page 16: a LoRA training step on a copy of the LM against a plain forward pass of the batch."""

from __future__ import annotations

import time

from bench.common import Row, mb, note, seconds


def rows(steps: int = 4) -> list[Row]:
    import torch

    from core import fine_tuning as ft
    from core.runtime.models import heavy_work, load_embedded

    lm = load_embedded()
    data = ft.load_data()
    data = ft.FineTuneData(data.examples, data.held_out[:1], data.style, data.marker)
    targets = ft.default_targets(ft.adaptable_modules(lm.model))
    s = ft.LoraSettings(rank=8, targets=targets, steps=steps, answer_tokens=1)
    batch = [ft.masked_chat(lm.tokenizer, ft.conversation(u, a)) for u, a in data.examples[:4]]
    ids, attn, _ = ft._tensors(batch, lm.tokenizer.pad_token_id or 0)
    forward = []
    for _ in range(3):
        start = time.perf_counter()
        with heavy_work(), torch.inference_mode():
            lm.model(input_ids=ids, attention_mask=attn)
        forward.append(time.perf_counter() - start)
    note(f"fine-tuning: {steps} LoRA steps (r=8, q and v, batch 4) on a copy of the LM")
    result = ft.fine_tune(lm, data, s, before=("",))
    step = result.seconds_per_step
    base = min(forward)
    out = [
        Row(
            "Fine-tuning: LoRA step, r=8 on q/v, batch of 4 chats",
            seconds(step),
            f"forward pass of the same batch: {seconds(base)}",
            f"{step / base:.1f}x",
        )
    ]
    if result.peak_rss_rise:
        out.append(
            Row(
                "Fine-tuning: memory rise during the run (copy + training)",
                mb(result.peak_rss_rise),
                f"copy of the weights: {mb(result.copy_bytes)}",
                f"{result.peak_rss_rise / result.copy_bytes:.1f}x",
            )
        )
    return out
