"""Page 17: reading answers for the reward model, training its head, best-of-n sampling."""

from __future__ import annotations

import time

from bench.common import Row, note, seconds


def rows(answers: int = 8, n: int = 4) -> list[Row]:
    import torch

    from core import rlhf
    from core.fine_tuning import conversation, encode, render
    from core.runtime.models import heavy_work, load_embedded

    lm = load_embedded()
    data = rlhf.load_pairs()
    items = rlhf.answers_of(data)[:answers]
    note(f"rlhf: features of {answers} answers, head training, best-of-{n}")
    start = time.perf_counter()
    feats = rlhf.answer_features(lm, items)
    per_answer = (time.perf_counter() - start) / answers
    ids = encode(lm.tokenizer, render(lm.tokenizer, conversation(*items[0]), False))
    start = time.perf_counter()
    with heavy_work(), torch.inference_mode():
        lm.model(torch.tensor([ids]))
    plain = time.perf_counter() - start
    x = torch.randn(2 * len(data.pairs), feats.features.shape[1]).numpy()
    train, held = rlhf.pair_indices(data)
    start = time.perf_counter()
    rlhf.train_reward_model(x, train, held)
    head = time.perf_counter() - start
    prompt = data.pairs[-1].prompt
    start = time.perf_counter()
    rlhf.sample_answers(lm, prompt, 1, 24)
    one = time.perf_counter() - start
    start = time.perf_counter()
    rlhf.sample_answers(lm, prompt, n, 24)
    best = time.perf_counter() - start
    return [
        Row(
            "RLHF: reading one answer for the reward model (hidden state + log-probs)",
            seconds(per_answer),
            f"plain forward pass: {seconds(plain)}",
            f"{per_answer / plain:.1f}x",
        ),
        Row(
            "RLHF: training the reward head (150 full-batch steps)",
            seconds(head),
            f"one answer read: {seconds(per_answer)}",
            f"{head / per_answer:.1f}x",
        ),
        Row(
            f"RLHF: best-of-{n} sampling, 24 tokens each",
            seconds(best),
            f"one sample: {seconds(one)}",
            f"{best / one:.1f}x",
        ),
    ]
