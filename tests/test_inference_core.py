"""core.inference_loop against references: model.generate, the cache tensors the model returns,
the attention weights it builds, transformers' own tokenizer truncation, brute force."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

from core import context_window
from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.runtime.generation import DecodingSettings, generate_stream

PROMPT = "The capital of France is"


def _greedy(lm, ids, n, use_cache):
    s = DecodingSettings(temperature=0.0, max_new_tokens=n, stop_at_eos=False)
    return [st.token_id for st in generate_stream(lm, ids, s, use_cache=use_cache)]


@pytest.mark.parametrize("which", ["smollm2", "tiny_gpt2"])
def test_greedy_tokens_same_with_cache_without_cache_and_generate(request, which):
    """The one door's greedy loop, with and without its KV cache, against model.generate."""
    lm = request.getfixturevalue("lm" if which == "smollm2" else "tiny_gpt2")
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    n = 12
    cached, uncached = _greedy(lm, ids, n, True), _greedy(lm, ids, n, False)
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=lm.tokenizer.eos_token_id,
        )
    assert cached == uncached == ref[0, len(ids) :].tolist()


def test_time_per_token_marks_prefill_and_counts_positions(lm):
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    timings = inf.time_per_token(lm, ids, 4, use_cache=True)
    assert [t.position for t in timings] == list(range(len(ids), len(ids) + 4))
    assert [t.prefill for t in timings] == [True, False, False, False]
    assert all(t.ms > 0 for t in timings)


def test_kv_formula_equals_the_cache_the_embedded_model_returns(lm):
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = lm.model(torch.tensor([ids]), use_cache=True)
    geo = geometry(lm.config)
    assert geo.n_kv_heads == lm.config.num_key_value_heads < geo.n_heads  # GQA read, not assumed
    assert inf.cache_tensor_bytes(out.cache) == inf.kv_cache_bytes(lm.config, len(ids), 4)


def _meta_cache_bytes(config, tokens: int, dtype: torch.dtype) -> int:
    """Build the architecture on the meta device (no memory) and run it: the returned cache
    tensors have real shapes and dtypes but no storage."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():
        out = model(torch.zeros(1, tokens, dtype=torch.long, device="meta"), use_cache=True)
    return inf.cache_tensor_bytes(out.cache)


@pytest.mark.parametrize("model", inf.published_models(), ids=lambda m: m.name)
def test_kv_formula_equals_cache_tensors_of_published_configs(model):
    for dtype, width in ((torch.float32, 4), (torch.bfloat16, 2)):
        assert _meta_cache_bytes(model.config, 7, dtype) == inf.kv_cache_bytes(
            model.config, 7, width
        )


def test_published_geometries_read_both_naming_schemes():
    by_name = {m.name: geometry(m.config) for m in inf.published_models()}
    gpt2 = by_name["GPT-2 small (124M)"]
    assert (gpt2.n_layers, gpt2.n_kv_heads, gpt2.head_dim, gpt2.context) == (12, 12, 64, 1024)
    # Llama-2-7B in fp16 at its 4096-token context: the often-quoted 2 GiB per sequence
    llama2 = next(m for m in inf.published_models() if m.name == "Llama-2-7B")
    assert inf.kv_cache_bytes(llama2.config, 4096, 2) == 2 * 1024**3
    assert by_name["Llama-3-8B"].cache_bytes_per_token(2) * 4 == by_name[
        "Llama-2-7B"
    ].cache_bytes_per_token(2)


@pytest.mark.parametrize("tokens", [1, 9, 40])
def test_forward_cost_memory_equals_formulas_gpt2(tiny_gpt2, tokens):
    cost = context_window.forward_cost(tiny_gpt2, list(range(100, 100 + tokens)))
    assert cost.kv_bytes == cost.kv_formula == 2 * 2 * 4 * 8 * tokens * 4
    assert cost.scores_bytes == cost.scores_formula == 4 * tokens * tokens * 4


def test_forward_cost_memory_equals_formulas_llama(lm):
    ids = context_window.filler_ids(lm.tokenizer, 48)
    cost = context_window.forward_cost(lm, ids)
    assert cost.tokens == 48
    assert cost.kv_bytes == cost.kv_formula
    assert cost.scores_bytes == cost.scores_formula == lm.config.num_attention_heads * 48**2 * 4


def test_attention_hooks_are_removed(tiny_gpt2):
    def count() -> int:
        return sum(len(m._forward_hooks) for m in tiny_gpt2.model.modules())

    before = count()
    with pytest.raises(RuntimeError):
        with context_window.attention_score_bytes(tiny_gpt2.model):
            assert count() > before
            raise RuntimeError("a failing forward")
    assert count() == before


@settings(max_examples=200, deadline=None)
@given(
    n=hs.integers(0, 60),
    budget=hs.integers(0, 80),
    strategy=hs.sampled_from(["left", "right", "middle"]),
)
def test_truncation_keeps_exactly_the_budget(n, budget, strategy):
    ids = list(range(1000, 1000 + n))
    cut = context_window.truncate(ids, budget, strategy)
    assert len(cut.kept) == min(budget, n)
    assert cut.dropped == n - len(cut.kept)
    assert list(cut.kept) == [ids[i] for i in cut.kept_positions]
    assert list(cut.kept_positions) == sorted(set(cut.kept_positions))  # order preserved


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_matches_the_tokenizers_own(lm, side):
    text = "One two three four five six seven eight nine ten eleven twelve"
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    lm.tokenizer.truncation_side, old = side, lm.tokenizer.truncation_side
    try:
        ref = lm.tokenizer(text, add_special_tokens=False, truncation=True, max_length=5)
    finally:
        lm.tokenizer.truncation_side = old
    assert list(context_window.truncate(ids, 5, side).kept) == ref["input_ids"]


def test_middle_truncation_keeps_both_ends():
    cut = context_window.truncate(list(range(10)), 5, "middle")
    assert cut.kept == (0, 1, 2, 8, 9)


def test_haystack_hides_the_needle_at_its_depth(lm):
    tok = lm.tokenizer
    start = context_window.haystack(tok, 200, 0.0, "12345")
    end = context_window.haystack(tok, 200, 1.0, "12345")
    assert start.text.startswith("The secret number is 12345.")
    assert end.text.endswith("The secret number is 12345.")
    assert start.tokens == len(tok(start.text, add_special_tokens=False)["input_ids"])
    assert 200 <= start.tokens <= 200 + 16  # at most one filler sentence over


@pytest.mark.parametrize(
    "answer,found",
    [
        ("48213.", True),
        (" 4 8 2 1 3", True),
        ("48,213", True),
        ("4821", False),
        ("no idea", False),
        ("12 48213", False),
    ],
)
def test_recall_reads_the_first_number(answer, found):
    assert context_window.recalled(answer, "48213") is found


def test_needle_probe_yields_progress_for_every_trial(lm):
    grid = context_window.needle_grid([64, 10**6], [0.0, 1.0], lm.config.max_position_embeddings)
    assert grid == [(64, 0.0), (64, 1.0)]  # the over-long length is dropped, not run
    progress = list(context_window.needle_probe(lm, [64], [0.0, 1.0]))
    assert [(p.done, p.total) for p in progress] == [(1, 2), (2, 2)]
    assert progress[0].trial.secret != progress[1].trial.secret  # a new number per trial
    special = set(lm.tokenizer.all_special_ids)
    for p in progress:  # reference: the same prompt answered by model.generate, greedily
        hay = context_window.haystack(lm.tokenizer, p.trial.length, p.trial.depth, p.trial.secret)
        ids = context_window.needle_prompt_ids(lm.tokenizer, hay)
        with torch.inference_mode():
            out = lm.model.generate(
                torch.tensor([ids]),
                do_sample=False,
                max_new_tokens=inf.NEEDLE_NEW_TOKENS,
                pad_token_id=lm.tokenizer.eos_token_id,
            )
        answer = lm.tokenizer.decode([t for t in out[0, len(ids) :].tolist() if t not in special])
        assert p.trial.answer == answer.strip()
        assert p.trial.found == context_window.recalled(answer, p.trial.secret)


def test_filler_ids_exact_length(lm):
    assert len(context_window.filler_ids(lm.tokenizer, 333)) == 333
