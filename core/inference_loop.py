"""The inference loop and the context window, measured on the model.

KV-cache sizes from a config (checked against the cache tensors the model returns), milliseconds
per token with and without the cache, forward cost against sequence length, truncation of a
prompt to a token budget, and a needle-in-a-haystack probe. Generation goes through
`core.decoding.generate_stream`, the single door.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.inspect.anatomy import geometry
from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.models import LoadedModel

TIMING_CAP = 128  # new tokens per timing run
FORWARD_CAP = 2048  # longest sequence the forward-cost sweep runs
DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


# --- KV-cache size from a config (core.inspect.anatomy.Geometry reads it) -----------------------------


def kv_cache_bytes(config: Any, tokens: int, dtype_bytes: int = 4, batch: int = 1) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x tokens x bytes per number x batch."""
    return geometry(config).kv_cache_bytes(tokens, dtype_bytes, batch)


def context_length(config: Any, unlimited: int = FORWARD_CAP) -> int:
    """The longest prompt the config allows; `unlimited` when it sets none (ALiBi models)."""
    return geometry(config).context or unlimited


def cache_tensor_bytes(cache: Any) -> int:
    """Bytes of the key and value tensors a model actually returned as its cache."""
    layers = getattr(cache, "layers", None)
    pairs = [(layer.keys, layer.values) for layer in layers] if layers is not None else cache
    return sum(t.numel() * t.element_size() for pair in pairs for t in pair if t is not None)


def model_dtype_bytes(model: Any) -> int:
    return next(model.parameters()).element_size()


@dataclass(frozen=True)
class PublishedModel:
    name: str
    source: str  # where the hyper-parameters come from
    config: Any  # a transformers config object


# The models page 20 compares, by their names in core.full_model.PUBLISHED_CONFIGS (the one table of
# published configurations), with the labels this page shows.
KV_MODELS: dict[str, str] = {
    "GPT-2 small": "GPT-2 small (124M)",
    "SmolLM2 135M": "SmolLM2-135M",
    "SmolLM2 360M": "SmolLM2-360M",
    "Llama-2 7B": "Llama-2-7B",
    "Llama-3 8B": "Llama-3-8B",
}


def published_models() -> tuple[PublishedModel, ...]:
    """transformers config objects built from the published hyper-parameters."""
    from transformers import GPT2Config, LlamaConfig

    from core.shared.published import PUBLISHED_CONFIGS

    out = []
    for cfg in PUBLISHED_CONFIGS:
        if cfg["name"] in KV_MODELS:
            keys = {k: v for k, v in cfg.items() if k not in ("name", "source", "model_type")}
            cls = GPT2Config if cfg["model_type"] == "gpt2" else LlamaConfig
            out.append(PublishedModel(KV_MODELS[cfg["name"]], cfg["source"], cls(**keys)))
    return tuple(out)


@dataclass(frozen=True)
class KvPoint:
    model: str
    tokens: int
    bytes: int


def kv_memory_curve(
    models: Sequence[PublishedModel], dtype_bytes: int, points: int = 12
) -> tuple[KvPoint, ...]:
    """KV-cache bytes from 16 tokens up to each model's own context length (powers of two)."""
    rows = []
    for m in models:
        ctx = geometry(m.config).context
        lengths = sorted({min(ctx, 16 * 2**i) for i in range(points)})
        rows += [KvPoint(m.name, t, kv_cache_bytes(m.config, t, dtype_bytes)) for t in lengths]
    return tuple(rows)


# --- time per token, with and without the cache ----------------------------------------------


@dataclass(frozen=True)
class TokenTiming:
    position: int  # the new token's index in the whole sequence
    ms: float
    cached: bool
    prefill: bool
    token_id: int


def time_per_token(
    lm: LoadedModel,
    input_ids: Sequence[int],
    new_tokens: int,
    use_cache: bool,
    report: Callable[..., None] | None = None,
) -> tuple[TokenTiming, ...]:
    """Greedy generation through the single door, with each step's measured wall time;
    `report(fraction, text)` after each step when given."""
    n = min(new_tokens, TIMING_CAP)
    s = DecodingSettings(temperature=0.0, max_new_tokens=n, stop_at_eos=False)
    out = []
    for step in generate_stream(lm, input_ids, s, use_cache=use_cache):
        out.append(
            TokenTiming(step.position, step.seconds * 1000, use_cache, step.prefill, step.token_id)
        )
        if report is not None:
            report(len(out) / (n + 1), f"token {len(out)} of {n + 1}")
    return tuple(out)


def decode_ms(timings: Sequence[TokenTiming]) -> float:
    """Mean milliseconds per decode step, the prefill left out."""
    ms = [t.ms for t in timings if not t.prefill]
    return sum(ms) / len(ms) if ms else float("nan")


@dataclass(frozen=True)
class CacheComparison:
    """The same greedy continuation timed with and without the KV cache."""

    with_cache: tuple[TokenTiming, ...]
    without_cache: tuple[TokenTiming, ...]

    @property
    def cached_ms(self) -> float:
        """Mean milliseconds per decode step (the prefill left out) with the cache."""
        return decode_ms(self.with_cache)

    @property
    def uncached_ms(self) -> float:
        return decode_ms(self.without_cache)

    @property
    def speedup(self) -> float:
        return self.uncached_ms / self.cached_ms

    @property
    def same_tokens(self) -> bool:
        """Both runs chose the same tokens (greedy: they should, up to numerical noise)."""
        return [t.token_id for t in self.with_cache] == [t.token_id for t in self.without_cache]


def compare_cache(
    lm: LoadedModel,
    input_ids: Sequence[int],
    new_tokens: int,
    report: Callable[..., None] | None = None,
) -> CacheComparison:
    """The same greedy continuation timed with the cache, then without; `report(fraction,
    text)` after every step of both runs when given."""

    def half(offset: float, label: str) -> Callable[..., None] | None:
        if report is None:
            return None
        return lambda f, text="": report(offset + f / 2, f"{label}: {text}")

    return CacheComparison(
        time_per_token(lm, input_ids, new_tokens, True, half(0.0, "with the cache")),
        time_per_token(lm, input_ids, new_tokens, False, half(0.5, "without the cache")),
    )


# --- what fast mode changes: speed and agreement, measured -----------------------------------


@dataclass(frozen=True)
class QuantComparison:
    """The same greedy continuation from the float32 model and its int8 copy, timed."""

    fp32: tuple[TokenTiming, ...]
    int8: tuple[TokenTiming, ...]

    @property
    def fp32_ms(self) -> float:
        return decode_ms(self.fp32)

    @property
    def int8_ms(self) -> float:
        return decode_ms(self.int8)

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms

    @property
    def same_prefix(self) -> int:
        """Tokens the two runs chose alike before they first differ."""
        return agreeing_prefix([t.token_id for t in self.fp32], [t.token_id for t in self.int8])

    @property
    def tokens(self) -> int:
        return min(len(self.fp32), len(self.int8))


def agreeing_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def compare_int8(
    lm: LoadedModel,
    lm8: LoadedModel,
    input_ids: Sequence[int],
    new_tokens: int,
    report: Callable[..., None] | None = None,
) -> QuantComparison:
    """Greedy tokens from the float32 model, then from the int8 copy, each step timed."""

    def half(offset: float, label: str) -> Callable[..., None] | None:
        if report is None:
            return None
        return lambda f, text="": report(offset + f / 2, f"{label}: {text}")

    return QuantComparison(
        time_per_token(lm, input_ids, new_tokens, True, half(0.0, "float32")),
        time_per_token(lm8, input_ids, new_tokens, True, half(0.5, "int8")),
    )
