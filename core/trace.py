"""One forward pass over a prompt, kept as plain arrays that most pages reuse."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.models import LoadedModel, heavy_work

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
    A 256-token SmolLM2 trace is about 53 MB: 35 MB of attention, 18 MB of hidden states
    (kept in float32: page 08 recomputes a head from them and shows the difference)."""

    ids: np.ndarray  # (T,)
    tokens: tuple[str, ...]  # each token decoded on its own
    attentions: np.ndarray  # (layers, heads, T, T) float16
    hidden_states: np.ndarray  # (layers+1, T, d) float32: embeddings, then each block's output
    # (the last one after the final norm, as transformers returns it)
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


def run_trace(lm: LoadedModel, text: str, cap: int = TRACE_TOKEN_CAP) -> Trace:
    pt = prompt_tokens(lm.tokenizer, text, cap)
    input_ids = torch.tensor([pt.ids])
    with heavy_work(), torch.inference_mode():
        out = lm.model(input_ids, output_attentions=True, output_hidden_states=True)
    logits = out.logits[0].float()  # (T, vocab)
    logprobs = torch.log_softmax(logits, dim=-1)
    token_lp = torch.full((len(pt.ids),), float("nan"))
    if len(pt.ids) > 1:
        token_lp[1:] = logprobs[:-1].gather(1, input_ids[0, 1:, None])[:, 0]
    top = logprobs.topk(min(TOP_K, logits.shape[-1]), dim=-1)
    attn = torch.stack([a[0] for a in out.attentions]) if out.attentions else torch.empty(0)
    return Trace(
        ids=_readonly(np.asarray(pt.ids, dtype=np.int64)),
        tokens=token_strings(lm.tokenizer, pt.ids),
        attentions=_readonly(attn.to(torch.float16).numpy()),  # (L, H, T, T)
        hidden_states=_readonly(torch.stack([h[0] for h in out.hidden_states]).numpy()),
        last_logits=_readonly(logits[-1].numpy().copy()),
        token_logprobs=_readonly(token_lp.numpy()),
        top_ids=_readonly(top.indices.to(torch.int32).numpy()),
        top_probs=_readonly(top.values.exp().numpy()),
        truncated_from=pt.truncated_from,
    )
