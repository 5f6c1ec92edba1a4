"""Page 14: the tiny GPT's loss, the schedule, data parallelism and memory, and the page."""

from __future__ import annotations

import math

import pytest
import torch

from core import pretraining_loop as pt
from core.layers import toy_threads
from core.shared.published import count_parameters

SMALL_TEXT_CHARS = 40_000


@pytest.fixture(scope="module")
def chars() -> pt.TokenizedCorpus:
    return pt.char_corpus(pt.corpus_text()[:SMALL_TEXT_CHARS])


def test_char_corpus_round_trips_and_holds_out_validation(chars):
    text = pt.corpus_text()[:SMALL_TEXT_CHARS]
    assert chars.decode(chars.train.tolist()) + chars.decode(chars.val.tolist()) == text
    assert len(chars.val) == pytest.approx(0.1 * len(text), abs=1)


def test_bpe_corpus_keeps_only_occurring_ids(lm):
    text = pt.corpus_text()[:20_000]
    c = pt.bpe_corpus(lm.tokenizer, text)
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert c.vocab_size == len(set(ids)) < len(lm.tokenizer)
    assert c.decode(torch.cat([c.train, c.val]).tolist()) == lm.tokenizer.decode(ids)


def test_corpus_tokenized_in_pieces_equals_the_whole_text(lm):
    text = pt.corpus_text()
    pieces = [p for p in pt.PIECE_BOUNDARY.split(text) if p]
    assert len(pieces) > pt.PIECES_PER_CALL  # several calls, so the joins are exercised
    whole = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert pt.tokenize_in_pieces(lm.tokenizer, text) == whole


def test_initial_loss_is_ln_vocab_and_falls(chars):
    cfg = pt.TrainConfig(
        steps=40, batch_size=8, context=32, d_model=64, eval_every=10, sample_every=20, warmup=5
    )
    partials = []
    with toy_threads():  # tiny models: one thread is many times faster on a busy machine
        log = pt.train(chars, cfg, lambda f, t="", partial=None: partials.append(partial))
    assert log.initial_loss == pytest.approx(math.log(chars.vocab_size), rel=0.03)
    assert log.evals[-1].val < log.initial_loss - 0.8
    assert len(partials) == 41 and len(partials[-1].losses) == 40
    assert partials[-1].evals[-1].step == 40  # the last report carries the final evaluation
    assert [s for s, _ in log.samples] == [0, 20, 40]
    assert log.tokens == 40 * 8 * 32 and log.tokens_per_s > 0


def test_schedule_equals_transformers():
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=3e-3)
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, 20, 200, min_lr_rate=0.1)
    ours = pt.lr_schedule(3e-3, 20, 200, 0.1)
    theirs = []
    for _ in range(200):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)
    assert max(ours) == pytest.approx(3e-3) and ours[0] == 0.0


def test_clipping_caps_the_update_norm(chars):
    model = pt.make_model(chars, pt.TrainConfig(d_model=32, n_head=2, context=16))
    x, y = pt.get_batch(chars.train, 4, 16, torch.Generator().manual_seed(0))
    model.loss(x, y).backward()
    before = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
    after = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
    assert before > 1e-3 and float(after) == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.parametrize("workers", [2, 4])
def test_data_parallel_average_equals_full_batch_gradient(chars, workers):
    model = pt.make_model(chars, pt.TrainConfig(d_model=32, n_head=2, context=16))
    x, y = pt.get_batch(chars.train, 8, 16, torch.Generator().manual_seed(1))
    with toy_threads():
        check = pt.data_parallel_check(model, x, y, workers)
    assert check.max_abs_diff < 1e-6
    assert check.averaged_grad_norm == pytest.approx(check.full_grad_norm, rel=1e-5)
    assert len(set(round(n, 6) for n in check.worker_grad_norms)) == workers  # shards differ
    # reference: autograd's gradient of each shard, flattened, stacked and averaged
    params = list(model.parameters())
    shard = 8 // workers

    def flat_grad(xs, ys):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(model.loss(xs, ys), params)])

    grads = [
        flat_grad(x[w * shard : (w + 1) * shard], y[w * shard : (w + 1) * shard])
        for w in range(workers)
    ]
    full = flat_grad(x, y)
    assert check.n_values == full.numel()
    assert check.full_grad_norm == pytest.approx(float(full.norm()), rel=1e-5)
    assert check.worker_grad_norms == pytest.approx([float(g.norm()) for g in grads], rel=1e-5)
    assert check.averaged_grad_norm == pytest.approx(
        float(torch.stack(grads).mean(0).norm()), rel=1e-5
    )


def test_parameter_count_on_meta_equals_the_built_model(chars):
    cfg = pt.GPTConfig(chars.vocab_size, context=16, n_layer=2, n_head=2, d_model=32)
    assert pt.config_parameter_count(cfg) == count_parameters(pt.TinyGPT(cfg))


def test_adamw_fp32_is_sixteen_bytes_per_parameter(chars):
    model = pt.make_model(chars, pt.TrainConfig(d_model=32, n_head=2, context=16))
    measured = pt.adamw_state_bytes(model)
    n = count_parameters(model)
    assert measured == {"weights": 4 * n, "grads": 4 * n, "optimizer": 8 * n}
    plan = pt.memory_plan(pt.ParallelPlan(n, 2, 32, precision="fp32"))
    assert plan.total == sum(measured.values()) == 16 * n


def test_zero_stages_shard_over_data_parallel():
    base = dict(params=1_000_000, n_layer=4, d_model=64, dp=4)
    totals = [pt.memory_plan(pt.ParallelPlan(**base, zero=z)).total for z in range(4)]
    assert totals == [16e6, 4e6 + 4e6 + 2e6, 4e6 + 1e6 + 2e6, 4e6]
    tp = pt.memory_plan(pt.ParallelPlan(**{**base, "dp": 1}, tp=4, pp=2))
    assert tp.total == pytest.approx(16e6 / 8)
    assert tp.bubble == pytest.approx(1 / 9) and tp.tp_bytes > 0 and tp.dp_bytes == 0
    assert pt.ring_allreduce_bytes(100.0, 4) == pytest.approx(150.0)


def test_page_trains_and_shows_loss_falling():
    from apptest_util import chart_frames, open_page

    at = open_page("pages/14_pretraining_loop.py")
    assert not at.exception, at.exception
    at.radio(key="pretraining_loop.kind").set_value("char").run()
    at.slider(key="pretraining_loop.steps").set_value(20).run()
    at.select_slider(key="pretraining_loop.batch").set_value(4).run()
    at.select_slider(key="pretraining_loop.context").set_value(16).run()
    assert not at.exception, at.exception
    start = [b for b in at.button if b.label.startswith("Train the tiny GPT")]
    assert start
    start[0].click().run()
    assert not at.exception, at.exception
    losses = None
    for frames in chart_frames(at):
        for df in frames:
            if {"curve", "loss"} <= set(df.columns):
                losses = df
    assert losses is not None
    vocab = int(next(m for m in at.metric if m.label == "vocabulary V").value.replace(",", ""))
    val = losses[losses.curve == "validation"].sort_values("step")["loss"].tolist()
    assert val[0] == pytest.approx(
        math.log(vocab), rel=1e-3
    )  # the zero output layer's uniform guess
    assert val[-1] < val[0] - 0.3
    assert any(f"ln V = {math.log(vocab):.3f}" in m.value for m in at.markdown)

    at.select_slider(key="pretraining_loop.workers").set_value(2).run()  # the data-parallel demo
    assert not at.exception, at.exception
    dp = next(m.value for m in at.markdown if "all-reduce averages" in m.value)
    assert "Each of 2 workers" in dp
    diff = float(dp.split("**")[1])
    assert diff < 1e-6


def test_schedule_caption_states_the_schedule_without_dividing_by_zero_warmup():
    import math

    from components.pretraining_loop import schedule_caption

    none = schedule_caption(3e-4, 0, 200)
    assert "/ 0" not in none and "warmup" in none.lower()  # "t / 0 during warmup" before
    assert "π · t / 200" in none
    # the formula it states is the one the loop follows
    for t in (0, 50, 199):
        stated = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / 200))
        assert pt.lr_factor(t, 0, 200, 0.1) == pytest.approx(stated)
    some = schedule_caption(3e-3, 20, 200)
    assert "t / 20 during warmup" in some and "(t − 20) / 180" in some
    for t in (20, 110, 199):
        stated = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (t - 20) / 180))
        assert pt.lr_factor(t, 20, 200, 0.1) == pytest.approx(stated)


def test_default_run_learns_visibly():
    """The page's defaults (characters, TrainConfig's 200 steps): the loss falls well below
    ln V and the last sample is mostly letters and spaces, the first one is symbol soup."""
    from components.pretraining_loop import DEFAULT_KIND

    assert DEFAULT_KIND == "char"
    corpus = pt.char_corpus()
    cfg = pt.TrainConfig()
    log = pt.train(corpus, replace_steps(cfg))
    assert log.evals[-1].val < 0.65 * math.log(corpus.vocab_size)

    def wordy(text: str) -> float:
        body = text[len(pt.SAMPLE_PROMPT) :]
        return sum(c.isalpha() and c.islower() or c == " " for c in body) / max(1, len(body))

    first, last = log.samples[0][1], log.samples[-1][1]
    assert wordy(last) > wordy(first) + 0.2, (first, last)


def replace_steps(cfg):
    from dataclasses import replace

    return replace(cfg, eval_every=max(5, cfg.steps // 10), sample_every=max(10, cfg.steps // 5))


def test_traffic_caption_names_no_zero_byte_transfers_for_parallelisms_switched_off():
    # At the calculator's defaults (8 data-parallel GPUs, no tensor or pipeline parallelism)
    # the caption read "activations 0 B (tensor parallel, 4 all-reduces per layer), 0 B
    # between pipeline stages": all-reduces that do not happen.
    from components.pretraining_loop import _size, traffic_text
    from core import pretraining_loop as pt

    plan = pt.ParallelPlan(134_515_008, 30, 576, dp=8)
    mem = pt.memory_plan(plan)
    assert mem.tp_bytes == 0 and mem.pp_bytes == 0 and mem.dp_bytes > 0
    text = traffic_text(plan, mem)
    assert " 0 B" not in text and "all-reduces per layer" not in text
    assert f"gradients {_size(mem.dp_bytes)}" in text
    split = pt.ParallelPlan(134_515_008, 30, 576, dp=2, tp=2, pp=2)
    mem = pt.memory_plan(split)
    text = traffic_text(split, mem)
    assert f"activations {_size(mem.tp_bytes)} (tensor parallel" in text
    assert f"{_size(mem.pp_bytes)} between pipeline stages" in text
    assert f"bubble {mem.bubble:.0%}" in text


def test_first_loss_gap_never_reads_zero_percent():
    # "4.635 against ln V = 4.635 (0.0% apart)": a gap below the printed precision.
    import math

    from components.pretraining_loop import gap_text

    assert gap_text(4.6348, math.log(103)) == "less than 0.01% apart"
    assert gap_text(4.70, 4.635) == "1.40% apart"
