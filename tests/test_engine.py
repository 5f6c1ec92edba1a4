"""The batched generation engine: the same logits and text alone and in a batch of learners."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from core.runtime import generation
from core.runtime.engine import Engine, engine_for

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "def fibonacci(n):",
    "1, 2, 3, 4,",
]
STEPS = 10


def _greedy(engine: Engine, ids: list[int], record: list, start: threading.Event | None = None):
    """Greedy decoding through the engine, recording every row of logits it hands over."""
    if start is not None:
        start.wait()
    done = threading.Event()

    def choose(logits: torch.Tensor) -> int | None:
        record.append(logits.clone())
        time.sleep(0.001 * (len(ids) % 3))  # learners' choices take different times
        return int(logits.argmax()) if len(record) < STEPS else None

    engine.open(ids, choose, lambda error: done.set())
    assert done.wait(timeout=300)


def _alone_and_batched(model, prompts_ids):
    alone = []
    for ids in prompts_ids:
        rec: list = []
        _greedy(Engine(model), ids, rec)
        alone.append(rec)
    engine, start = Engine(model), threading.Event()
    batched = [[] for _ in prompts_ids]
    threads = [
        threading.Thread(target=_greedy, args=(engine, ids, rec, start))
        for ids, rec in zip(prompts_ids, batched)
    ]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(timeout=300)
    return alone, batched, engine


def test_batched_logits_equal_each_sequence_alone(lm):
    prompts_ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    alone, batched, engine = _alone_and_batched(lm.model, prompts_ids)
    assert engine.largest_batch > 1  # the learners really shared forward passes
    for a, b in zip(alone, batched):
        assert len(a) == len(b) == STEPS
        for la, lb in zip(a, b):
            assert torch.allclose(la, lb, atol=2e-3, rtol=0), float((la - lb).abs().max())
        assert [int(x.argmax()) for x in a] == [int(x.argmax()) for x in b]
    assert engine.active() == 0


def test_batched_logits_equal_the_plain_model(lm):
    """A batch with padding and holes gives each row what the model gives that text alone."""
    ids = lm.tokenizer(PROMPTS[1])["input_ids"]
    _, batched, _ = _alone_and_batched(lm.model, [lm.tokenizer(PROMPTS[0])["input_ids"], ids])
    greedy = [int(x.argmax()) for x in batched[1]]
    with torch.inference_mode():
        full = lm.model(torch.tensor([ids + greedy[:-1]])).logits[0, len(ids) - 1 :]
    got = torch.stack(batched[1])
    assert torch.allclose(got, full.float(), atol=2e-3, rtol=0)


def test_absolute_position_models_batch_correctly(tiny_gpt2_lm):
    tok = tiny_gpt2_lm.tokenizer
    prompts_ids = [tok(p)["input_ids"] for p in PROMPTS]
    alone, batched, engine = _alone_and_batched(tiny_gpt2_lm.model, prompts_ids)
    assert engine.largest_batch > 1
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(torch.stack(a).numpy(), torch.stack(b).numpy(), atol=1e-4)


def test_a_learner_who_stops_gives_the_row_back(lm):
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    stream = generation.generate_stream(lm, ids, generation.DecodingSettings(max_new_tokens=50))
    next(stream)
    next(stream)
    engine = engine_for(lm.model)
    assert engine.active() == 1
    stream.close()  # the page stopped reading (Stop pressed, tab closed)
    assert engine.active() == 0


def test_seeded_sampling_is_the_same_alone_and_beside_others(lm):
    s = generation.DecodingSettings(temperature=1.0, top_k=40, max_new_tokens=12, seed=7)
    ids = lm.tokenizer(PROMPTS[2])["input_ids"]
    alone = [x.token_id for x in generation.generate_stream(lm, ids, s)]
    others = [
        threading.Thread(
            target=lambda p=p: list(
                generation.generate_stream(
                    lm, lm.tokenizer(p)["input_ids"], generation.DecodingSettings(max_new_tokens=12)
                )
            )
        )
        for p in PROMPTS
    ]
    for t in others:
        t.start()
    together = [x.token_id for x in generation.generate_stream(lm, ids, s)]
    for t in others:
        t.join(timeout=300)
    assert together == alone


@pytest.fixture(scope="module")
def tiny_gpt2_lm(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    from core.runtime.models import LoadedModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50257, n_positions=128)
    model = GPT2LMHeadModel(cfg).eval()

    class Tok:  # a byte-level stand-in: one id per byte
        def __call__(self, text):
            return {"input_ids": list(text.encode())}

    return LoadedModel("tiny-gpt2", model, Tok(), "test")


def test_a_failing_choice_ends_only_its_own_sequence(lm):
    engine = Engine(lm.model)
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    results: dict[str, object] = {}
    done = {k: threading.Event() for k in ("bad", "good")}
    good: list = []

    def bad_choose(logits):
        raise ValueError("a grammar mask broke")

    def good_choose(logits):
        good.append(int(logits.argmax()))
        return good[-1] if len(good) < STEPS else None

    def finisher(name):
        def finish(error):
            results[name] = error
            done[name].set()

        return finish

    engine.open(ids, bad_choose, finisher("bad"))
    engine.open(ids, good_choose, finisher("good"))
    assert done["bad"].wait(300) and done["good"].wait(300)
    assert isinstance(results["bad"], ValueError)
    assert results["good"] is None and len(good) == STEPS


def test_prefill_groups_waste_little_on_padding():
    from core.runtime.engine import PAD_SLACK, _groups

    class S:
        def __init__(self, n):
            self.prompt = [1] * n

    seqs = [S(n) for n in (3, 4, 5, 5, 6, 40, 44, 300)]
    groups = _groups(seqs)
    assert [len(s.prompt) for g in groups for s in g] == [3, 4, 5, 5, 6, 40, 44, 300]
    for g in groups:
        real = sum(len(s.prompt) for s in g)
        assert len(g[-1].prompt) * len(g) <= PAD_SLACK * real + 16
    assert len(groups[-1]) == 1  # the long prompt is read alone
