"""The model layer: GGUF conversion and cache repair, hub path on a tiny GPT-2, the trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.inspect.trace import run_trace
from core.runtime import models
from core.runtime.generation import DecodingSettings, generate_text


def test_hub_path_loads_a_local_gpt2_and_everything_runs_on_it(tiny_gpt2_dir, monkeypatch):
    monkeypatch.setenv(models.ALLOW_LOCAL_ENV, "1")  # the operator allows local folders
    lm = models.load_hub(str(tiny_gpt2_dir))
    assert lm.config.model_type == "gpt2" and not lm.model.training
    trace = run_trace(lm, "Hello there, general Kenobi")
    assert trace.attentions.shape == (2, 4, trace.length, trace.length)
    assert trace.normed.shape == (3, trace.length, 32)
    rows = trace.attentions.astype(np.float32).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-2)
    steps = generate_text(
        lm, trace.ids.tolist(), DecodingSettings(temperature=0, max_new_tokens=5, stop_at_eos=False)
    )
    with torch.inference_mode():
        ref = lm.model.generate(
            torch.tensor([trace.ids.tolist()]),
            do_sample=False,
            max_new_tokens=5,
            min_new_tokens=5,
            pad_token_id=50256,
        )
    assert [s.token_id for s in steps] == ref[0, trace.length :].tolist()


def test_unknown_or_bad_ids_raise_model_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for bad in ["", "has spaces in it", "x" * 300, "surely-not/a-model-that-exists-here"]:
        with pytest.raises(models.ModelUnavailable):
            models.load_hub(bad)


def test_conversion_matches_gguf_and_a_damaged_cache_is_rebuilt(
    tmp_path, monkeypatch, converted_cache
):
    """The converted folder gives the same logits as the GGUF loaded directly; truncating a
    file in the cache is detected and the next load rebuilds it."""
    import shutil

    from transformers import AutoModelForCausalLM

    shutil.copytree(converted_cache, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    src = models.gguf_path()
    messages: list[str] = []
    converted = models.load_embedded(messages.append)
    assert not messages, "a valid cache loads without converting"
    ref = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=torch.float32, attn_implementation="eager"
    )
    ids = torch.tensor([converted.tokenizer("The capital of France is")["input_ids"]])
    with torch.inference_mode():
        assert torch.equal(converted.model(ids).logits, ref(ids).logits)

    weights = models.converted_dir() / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    assert not models.cache_is_valid(models.converted_dir())
    calls: list = []
    monkeypatch.setattr(models, "convert_gguf", copying_conversion(converted_cache, calls))
    messages.clear()
    again = models.load_embedded(messages.append)
    assert calls and any("Repairing" in m for m in messages), messages
    assert models.cache_is_valid(models.converted_dir())
    with torch.inference_mode():
        assert torch.equal(again.model(ids).logits, ref(ids).logits)
    assert not list(tmp_path.glob(".convert-*")), "no half-written folder may stay behind"


def copying_conversion(pristine_root, calls):
    """A stand-in for convert_gguf that copies the session's one real conversion (the same
    files, written aside and renamed into place), so repairs in tests cost a second, not 30 s."""
    import os
    import shutil

    def convert(source, target, status=lambda _: None):
        calls.append(target)
        status("Converting the embedded SmolLM2 GGUF to safetensors (test copy)…")
        tmp = models.start_conversion_folder(target.parent)
        for f in models.converted_dir(pristine_root).iterdir():
            shutil.copy2(f, tmp / f.name)
        (tmp / models.PID_FILE).unlink()
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)

    return convert
