"""One forward pass over a prompt, kept as plain arrays that most pages reuse.

Two names for the stack of hidden states, because their last row differs:
- `normed` (here, `Trace.normed`): transformers' `hidden_states`, embeddings then each block's
  output, the LAST row taken after the final norm (what the output layer reads);
- `residual` (`core.full_model.ResidualStream.residual`): the same rows, the LAST one the last
  block's raw output, before the final norm (what the logit lens normalises itself).
Every row but the last is the same in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.inspect.anatomy import attention_modules
from core.inspect.hooks import Hook, scoped_hooks
from core.runtime.models import LoadedModel, heavy_work, last_only

TRACE_TOKEN_CAP = 256  # attention maps grow as T², so traces stop here (pages say so)
TOP_K = 10


@dataclass(frozen=True)
class PromptTokens:
    ids: tuple[int, ...]
    truncated_from: int  # the prompt's full token count; > len(ids) when it was cut

    @property
    def truncated(self) -> bool:
        return self.truncated_from > len(self.ids)


def prompt_tokens(tokenizer, text: str, cap: int = TRACE_TOKEN_CAP) -> PromptTokens:
    """Token ids for a prompt, cut to `cap` tokens; an empty prompt becomes one start token."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    if not ids:
        start = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )
        ids = [start if start is not None else 0]
    return PromptTokens(tuple(ids[:cap]), len(ids))


@dataclass(frozen=True)
class Trace:
    """Everything one forward pass tells about a prompt that a page draws. Arrays are read-only,
    each in the smallest dtype that draws the same picture; only the last position keeps a
    full-vocabulary row (sampling filters need all of it), the others keep their top TOP_K.
    Measured on SmolLM2 at 256 tokens: 18.5 MB without attention maps (18.3 MB of hidden
    states, kept in float32 because page 08 recomputes a head from them and shows the
    difference), 54 MB with them (+35 MB). Only pages 08 and 09 ask for attention maps, at 64
    tokens: about 7 MB."""

    ids: np.ndarray  # (T,)
    tokens: tuple[str, ...]  # each token decoded on its own
    attentions: np.ndarray  # (layers, heads, T, T) float16; empty unless asked for
    normed: np.ndarray  # (layers+1, T, d) float32: embeddings, then each block's output, the
    # last row after the final norm (transformers' hidden_states; see the module docstring)
    last_logits: np.ndarray  # (vocab,) float32: the next-token logits after the prompt
    token_logprobs: np.ndarray  # (T,) log p(token t | tokens < t); nan at t=0
    top_ids: np.ndarray  # (T, TOP_K) int32: the model's top guesses for the token after t
    top_probs: np.ndarray  # (T, TOP_K) float32
    truncated_from: int

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def token_strings(tokenizer, ids) -> tuple[str, ...]:
    return tuple(tokenizer.decode([int(i)], clean_up_tokenization_spaces=False) for i in ids)


LOGIT_CHUNK = 32  # positions scored at a time: (32, vocab) logits, 6 MB for SmolLM2


def run_trace(
    lm: LoadedModel, text: str, cap: int = TRACE_TOKEN_CAP, attentions: bool = True
) -> Trace:
    """One forward pass with hidden states, and attention maps unless `attentions` is False
    (then `Trace.attentions` is empty). The output layer runs on the last position only; the
    other positions' scores come from the final hidden states through the same layer, a few
    positions at a time (`position_scores`), so the (T, vocab) logits and their log-softmax,
    50 MB each at 256 tokens, never exist; the attentions are kept in float16 as each layer
    produces them (`HalfAttention`). Measured at 256 tokens: the pass peaks at about +110 MB
    with attention maps, +60 MB without (float32 attentions and full logits: about +330 MB)."""
    pt = prompt_tokens(lm.tokenizer, text, cap)
    input_ids = torch.tensor([pt.ids])
    half = HalfAttention(attention_modules(lm.model) if attentions else ())
    with heavy_work(), torch.inference_mode(), scoped_hooks(*half.hooks()):
        out = lm.model(
            input_ids,
            output_attentions=attentions,
            output_hidden_states=True,
            use_cache=False,  # no KV cache for one pass: 12 MB at 256 tokens
            **last_only(lm.model),
        )
        last = out.logits[0, -1].float().clone()
        attn = half.result(out.attentions) if attentions else torch.empty(0, dtype=torch.float16)
        hidden = torch.stack([h[0] for h in out.hidden_states])
        del out
        token_lp, top_ids, top_probs = position_scores(lm, input_ids[0], hidden[-1], last)
    return Trace(
        ids=_readonly(np.asarray(pt.ids, dtype=np.int64)),
        tokens=token_strings(lm.tokenizer, pt.ids),
        attentions=_readonly(attn.numpy()),  # (L, H, T, T)
        normed=_readonly(hidden.numpy()),
        last_logits=_readonly(last.numpy()),
        token_logprobs=_readonly(token_lp.numpy()),
        top_ids=_readonly(top_ids.to(torch.int32).numpy()),
        top_probs=_readonly(top_probs.numpy()),
        truncated_from=pt.truncated_from,
    )


class HalfAttention:
    """Attention weights kept in float16 as each layer produces them: a hook placed before
    transformers' own recorder copies the layer's weights into one (L, H, T, T) float16 buffer
    and passes a view of it on, so the float32 weights of a layer are freed as soon as the
    layer is done (70 MB for SmolLM2 at 256 tokens never exist together)."""

    def __init__(self, modules: tuple[Any, ...]) -> None:
        self.modules = modules
        self.index = {id(m): i for i, m in enumerate(modules)}
        self.buffer: torch.Tensor | None = None

    def _keep(self, module: Any, _args: Any, output: Any) -> Any:
        if not isinstance(output, tuple) or len(output) < 2 or output[1] is None:
            return None
        weights = output[1]  # (1, H, T, T)
        if self.buffer is None:
            shape = (len(self.modules), *weights.shape[1:])
            self.buffer = torch.empty(shape, dtype=torch.float16)
        i = self.index[id(module)]
        self.buffer[i] = weights[0]
        return (output[0], self.buffer[i : i + 1], *output[2:])

    def hooks(self) -> list[Hook]:
        return [Hook(m, "forward", self._keep, prepend=True) for m in self.modules]

    def result(self, recorded: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        """The buffer when what transformers recorded is the buffer's layers; otherwise (a model
        whose recorded weights come from elsewhere) the recorded weights, in float16."""
        buf = self.buffer
        if (
            buf is not None
            and recorded
            and len(recorded) == len(buf)
            and all(a.data_ptr() == buf[i].data_ptr() for i, a in enumerate(recorded))
        ):
            return buf
        return _stack_half(recorded)


def _stack_half(attentions: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
    """(L, H, T, T) float16, filled layer by layer (no float32 copy of the whole stack)."""
    if not attentions:
        return torch.empty(0, dtype=torch.float16)
    first = attentions[0][0]
    out = torch.empty((len(attentions), *first.shape), dtype=torch.float16)
    for i, a in enumerate(attentions):
        out[i] = a[0]
    return out


def position_scores(
    lm: LoadedModel, ids: torch.Tensor, final_hidden: torch.Tensor, last_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(token t | tokens < t) for each position (nan at t=0), and each position's TOP_K
    next-token ids and probabilities, LOGIT_CHUNK positions at a time.

    The logits come from the output layer applied to the final hidden states, which is what the
    model does, unless its last row differs from the model's own last logits (a model that
    scales or caps its logits after the output layer): then from one more full pass."""
    T = int(ids.shape[0])
    head = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
    logits_of: Callable[[slice], torch.Tensor]
    if head is not None and torch.allclose(
        head(final_hidden[-1:]).float()[0], last_logits, rtol=1e-4, atol=1e-4
    ):
        logits_of = lambda rows: head(final_hidden[rows]).float()  # noqa: E731
    else:
        full = lm.model(ids[None], use_cache=False).logits[0].float()
        logits_of = lambda rows: full[rows]  # noqa: E731
    token_lp = torch.full((T,), float("nan"))
    k = min(TOP_K, int(last_logits.shape[-1]))
    top_ids = torch.empty((T, k), dtype=torch.long)
    top_probs = torch.empty((T, k))
    for start in range(0, T, LOGIT_CHUNK):
        rows = slice(start, min(T, start + LOGIT_CHUNK))
        logprobs = torch.log_softmax(logits_of(rows), dim=-1)
        top = logprobs.topk(k, dim=-1)
        top_ids[rows], top_probs[rows] = top.indices, top.values.exp()
        nxt = ids[rows.start + 1 : rows.stop + 1]  # the token each position was followed by
        n = int(nxt.shape[0])
        token_lp[rows.start + 1 : rows.start + 1 + n] = logprobs[:n].gather(1, nxt[:, None])[:, 0]
    return token_lp, top_ids, top_probs
