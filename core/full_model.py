"""The logit lens, the residual stream's size by layer, and model sizes from configurations.

The logit lens (nostalgebraist, 2020) reads every layer's hidden state with the model's own
final norm and unembedding, as if the model stopped there. transformers' `hidden_states[-1]`
already has the final norm applied (checked for Llama and GPT-2), so the last block's raw output
is read from the final norm's input instead, and every layer goes through the same
norm -> lm_head path: the last row of the lens is then exactly the model's logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.inspect.anatomy import anatomy
from core.inspect.hooks import capture_outputs
from core.inspect.trace import TRACE_TOKEN_CAP, prompt_tokens, token_strings
from core.runtime.models import LoadedModel, heavy_work, keeps_logits

# Each lens cell projects a d-vector onto the whole vocabulary (49,152 rows for SmolLM2), for
# every layer: 31 layers x 64 positions took about 8 s on 2 shared cores, so the lens shows a
# window of this many positions at a time.
LENS_WINDOW = 16
LENS_TOP_K = 5
LENS_CHUNK = 32  # lens rows per pass over the unembedding: (32, vocab) logits, ~6 MB, at a time


@dataclass(frozen=True)
class ResidualStream:
    residual: torch.Tensor  # (layers+1, T, d): embeddings, then each block's raw output (pre-norm)
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
    return ResidualStream(residual=hidden, logits=logits)


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
    window_hidden = rs.residual[:, start:stop]  # (layers+1, W, d)
    flat = window_hidden.reshape(-1, window_hidden.shape[-1])  # (layers+1)*W rows
    top_i, top_p = [], []
    with heavy_work():
        # rows in chunks: one pass over the (vocab, d) unembedding serves many cells, and
        # memory stays at (LENS_CHUNK, vocab)
        for chunk in flat.split(LENS_CHUNK):
            top = lens_logits(lm, chunk).softmax(-1).topk(k, dim=-1)
            top_i.append(top.indices)
            top_p.append(top.values)
        last = lens_logits(lm, rs.residual[-1, start:stop])
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
        residual_norm=rs.residual.norm(dim=-1).numpy(),
        final_logits_error=err,
        truncated_from=pt.truncated_from,
    )
