"""The logit lens, the residual stream's size by layer, and model sizes from configurations.

The logit lens (nostalgebraist, 2020) reads every layer's hidden state with the model's own
final norm and unembedding, as if the model stopped there. transformers' `hidden_states[-1]`
already has the final norm applied (checked for Llama and GPT-2), so the last block's raw output
is read from the final norm's input instead, and every layer goes through the same
norm -> lm_head path: the last row of the lens is then exactly the model's logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.anatomy import Geometry, UnsupportedArchitecture, anatomy
from core.hooks import capture_outputs
from core.models import LoadedModel, heavy_work, keeps_logits
from core.trace import TRACE_TOKEN_CAP, prompt_tokens, token_strings

# Each lens cell projects a d-vector onto the whole vocabulary (49,152 rows for SmolLM2), for
# every layer: 31 layers x 64 positions took about 8 s on 2 shared cores, so the lens shows a
# window of this many positions at a time.
LENS_WINDOW = 16
LENS_TOP_K = 5
LENS_CHUNK = 32  # lens rows per pass over the unembedding: (32, vocab) logits, ~6 MB, at a time


@dataclass(frozen=True)
class ResidualStream:
    hidden: torch.Tensor  # (layers+1, T, d): embeddings, then each block's raw (pre-norm) output
    logits: torch.Tensor  # (T - start, vocab) the model's own logits from position `start` on


def residual_stream(lm: LoadedModel, input_ids: torch.Tensor, start: int = 0) -> ResidualStream:
    """The residual stream at every position; the output layer only from `start` on (the
    lens's window), not over the whole prompt (50 MB of logits at 256 tokens)."""
    last_block = anatomy(lm.model).blocks[-1]  # its raw output is what the final norm reads
    T = int(input_ids.shape[-1])
    keep = {"logits_to_keep": T - start} if start > 0 and keeps_logits(lm.model) else {}
    with heavy_work(), torch.inference_mode(), capture_outputs({"last": last_block}) as got:
        out = lm.model(input_ids, output_hidden_states=True, use_cache=False, **keep)
    hidden = torch.stack([*(h[0] for h in out.hidden_states[:-1]), got["last"][0]])
    logits = out.logits[0, -(T - start) :].float()
    return ResidualStream(hidden=hidden, logits=logits)


def lens_logits(lm: LoadedModel, hidden: torch.Tensor) -> torch.Tensor:
    """final norm + lm_head applied to (..., d) hidden states -> (..., vocab) logits."""
    with torch.inference_mode():
        a = anatomy(lm.model)
        return a.head(a.final_norm(hidden)).float()


@dataclass(frozen=True)
class LogitLens:
    tokens: tuple[str, ...]  # the whole (capped) prompt
    start: int  # first position of the lens window
    top_ids: np.ndarray  # (layers+1, W, k) top next-token guesses per layer and position
    top_probs: np.ndarray  # (layers+1, W, k)
    top_tokens: tuple[tuple[tuple[str, ...], ...], ...]  # decoded top_ids
    actual_next: tuple[str | None, ...]  # (W,) the prompt's real next token, None at the end
    residual_norm: np.ndarray  # (layers+1, T) L2 norm of the residual stream per position
    final_logits_error: float  # max |lens(last layer) - model logits| over the window
    truncated_from: int

    @property
    def window(self) -> range:
        return range(self.start, self.start + self.top_ids.shape[1])

    @property
    def known_next(self) -> int:
        """Positions of the window whose real next token is known (all but the prompt's end)."""
        return sum(a is not None for a in self.actual_next)

    @property
    def final_hits(self) -> int:
        """Positions where the last layer's top guess (the model's own) is the real next token."""
        return sum(
            a is not None and self.top_tokens[-1][j][0] == a for j, a in enumerate(self.actual_next)
        )


def logit_lens(
    lm: LoadedModel,
    text: str,
    start: int | None = None,
    window: int = LENS_WINDOW,
    cap: int = TRACE_TOKEN_CAP,
    k: int = LENS_TOP_K,
) -> LogitLens:
    """The lens over positions [start, start+window); default: the last `window` tokens."""
    pt = prompt_tokens(lm.tokenizer, text, cap)
    T = len(pt.ids)
    start = max(0, T - window) if start is None else min(max(0, start), max(0, T - 1))
    stop = min(T, start + window)
    rs = residual_stream(lm, torch.tensor([pt.ids]), start)
    window_hidden = rs.hidden[:, start:stop]  # (layers+1, W, d)
    flat = window_hidden.reshape(-1, window_hidden.shape[-1])  # (layers+1)*W rows
    top_i, top_p = [], []
    with heavy_work():
        # rows in chunks: one pass over the (vocab, d) unembedding serves many cells, and
        # memory stays at (LENS_CHUNK, vocab)
        for chunk in flat.split(LENS_CHUNK):
            top = lens_logits(lm, chunk).softmax(-1).topk(k, dim=-1)
            top_i.append(top.indices)
            top_p.append(top.values)
        last = lens_logits(lm, rs.hidden[-1, start:stop])
    err = float((last - rs.logits[: stop - start]).abs().max())
    shape = (*window_hidden.shape[:2], -1)
    ids = torch.cat(top_i).reshape(shape).numpy()  # (layers+1, W, k)
    probs = torch.cat(top_p).reshape(shape).numpy()
    unique = np.unique(ids)
    vocab = dict(zip(unique.tolist(), token_strings(lm.tokenizer, unique), strict=True))
    decoded = tuple(tuple(tuple(vocab[int(i)] for i in cell) for cell in row) for row in ids)
    text_tokens = token_strings(lm.tokenizer, pt.ids)
    actual = tuple(text_tokens[p + 1] if p + 1 < T else None for p in range(start, stop))
    return LogitLens(
        tokens=text_tokens,
        start=start,
        top_ids=ids,
        top_probs=probs,
        top_tokens=decoded,
        actual_next=actual,
        residual_norm=rs.hidden.norm(dim=-1).numpy(),
        final_logits_error=err,
        truncated_from=pt.truncated_from,
    )


# ---- model sizes from configurations ---------------------------------------------------------

# Published configurations, in the keys of each model's Hugging Face config.json. GPT-3 has no
# config.json: its row is Table 2.1 of Brown et al. (2020), in GPT-2's keys (same architecture).
PUBLISHED_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "name": "GPT-2 small",
        "source": "openai-community/gpt2 config.json",
        "model_type": "gpt2",
        "n_layer": 12,
        "n_embd": 768,
        "n_head": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 medium",
        "source": "openai-community/gpt2-medium config.json",
        "model_type": "gpt2",
        "n_layer": 24,
        "n_embd": 1024,
        "n_head": 16,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 large",
        "source": "openai-community/gpt2-large config.json",
        "model_type": "gpt2",
        "n_layer": 36,
        "n_embd": 1280,
        "n_head": 20,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-2 XL",
        "source": "openai-community/gpt2-xl config.json",
        "model_type": "gpt2",
        "n_layer": 48,
        "n_embd": 1600,
        "n_head": 25,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    {
        "name": "GPT-3 175B",
        "source": "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table 2.1",
        "model_type": "gpt2",
        "n_layer": 96,
        "n_embd": 12288,
        "n_head": 96,
        "n_positions": 2048,
        "vocab_size": 50257,
    },
    {
        "name": "Llama-2 7B",
        "source": "meta-llama/Llama-2-7b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-2 13B",
        "source": "meta-llama/Llama-2-13b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 40,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_attention_heads": 40,
        "num_key_value_heads": 40,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-2 70B",
        "source": "meta-llama/Llama-2-70b-hf config.json",
        "model_type": "llama",
        "num_hidden_layers": 80,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
    {
        "name": "Llama-3 8B",
        "source": "meta-llama/Meta-Llama-3-8B config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
    },
    {
        "name": "SmolLM2 135M",
        "source": "HuggingFaceTB/SmolLM2-135M config.json",
        "model_type": "llama",
        "num_hidden_layers": 30,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    {
        "name": "SmolLM2 360M",
        "source": "HuggingFaceTB/SmolLM2-360M config.json",
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    {
        "name": "SmolLM2 1.7B",
        "source": "HuggingFaceTB/SmolLM2-1.7B config.json",
        "model_type": "llama",
        "num_hidden_layers": 24,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
)


@dataclass(frozen=True)
class ParameterCount:
    embeddings: int
    per_layer: int
    layers: int  # per_layer * n_layer
    final_norm: int
    lm_head: int  # 0 when tied
    total: int


def parameter_count(shape: Geometry) -> ParameterCount:
    """Count weights the way the modules hold them (biases and norm gains included), for the
    GPT-2 and Llama families; `shape` is `core.anatomy.geometry(config)` of a config.json dict
    or a loaded config."""
    if shape.family not in ("gpt2", "llama"):
        raise UnsupportedArchitecture(f"no parameter formula for the {shape.family} family")
    d, ff, head_dim = shape.d_model, shape.d_ff, shape.head_dim
    if shape.family == "gpt2":
        attn = (d * 3 * d + 3 * d) + (d * d + d)  # fused q/k/v with bias, output projection
        mlp = (d * ff + ff) + (ff * d + d)  # up, GELU, down, with biases
        norms, final = 2 * (2 * d), 2 * d  # LayerNorm: gain and bias
    else:
        kv = shape.n_kv_heads * head_dim  # grouped-query attention: fewer key/value heads
        attn = d * d + 2 * d * kv + d * d  # q, k, v, o without biases
        mlp = 3 * d * ff  # gate, up, down (SwiGLU)
        norms, final = 2 * d, d  # RMSNorm: gain only
    per_layer = attn + mlp + norms
    embeddings = shape.vocab * d + shape.position_rows * d
    head = 0 if shape.tied else shape.vocab * d
    layers = per_layer * shape.n_layers
    return ParameterCount(
        embeddings, per_layer, layers, final, head, embeddings + layers + final + head
    )


def config_dict(hf_config: Any) -> dict[str, Any]:
    """A loaded model's own configuration as a plain dict with config.json keys."""
    return hf_config.to_dict()
