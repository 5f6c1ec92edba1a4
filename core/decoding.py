"""Decoding strategies (page 19): what the filters leave of the next-token distribution,
its entropy, and beam search with its tree. Sampling itself is `core.runtime.generation`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from core.runtime.generation import GENERATION_CAP, DecodingSettings, filter_logits
from core.runtime.models import LoadedModel, heavy_work
from core.shared.chat import eos_ids


def entropy_bits(logits: torch.Tensor) -> float:
    p = logits.float().softmax(dim=-1)
    logp = torch.where(p > 0, p.log2(), torch.zeros_like(p))
    # a single surviving token gives -(1 * 0) = -0.0, and rounding can dip below zero: clamp
    return max(0.0, float(-(p * logp).sum()))


def drawable_tokens(logits: torch.Tensor) -> int:
    """Tokens a float32 sampler can actually draw: probability not rounded to zero by softmax.

    At low temperature most logits fall so far below the top one that exp underflows to 0 in
    float32; `sample_token` can never pick those, although no filter removed them.
    """
    return int((logits.float().softmax(dim=-1) > 0).sum())


@dataclass(frozen=True)
class NextTokenView:
    """The next-token distribution before and after the filters, for charting."""

    ids: tuple[int, ...]  # the top tokens by original probability
    original: tuple[float, ...]
    filtered: tuple[float, ...]  # 0 where removed
    survivors: int  # tokens of the whole vocabulary with a float32 probability above zero
    entropy_before: float
    entropy_after: float


def next_token_view(
    logits: torch.Tensor, s: DecodingSettings, context_ids: Sequence[int] = (), top: int = 30
) -> NextTokenView:
    if not isinstance(logits, torch.Tensor):  # a read-only numpy array from a cached trace
        logits = torch.from_numpy(np.array(logits, dtype=np.float32))
    logits = logits.float()  # (vocab,)
    filtered = filter_logits(logits, s, context_ids)
    if s.greedy:
        keep = torch.full_like(filtered, float("-inf"))
        keep[filtered.argmax()] = 0.0
        filtered = keep
    p0, p1 = logits.softmax(-1), filtered.softmax(-1)
    order = p0.argsort(descending=True)[:top]
    return NextTokenView(
        ids=tuple(int(i) for i in order),
        original=tuple(float(p0[i]) for i in order),
        filtered=tuple(float(p1[i]) for i in order),
        survivors=drawable_tokens(filtered),
        entropy_before=entropy_bits(logits),
        entropy_after=entropy_bits(filtered),
    )


# --- beam search -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BeamNode:
    step: int  # 0 for the first generated token
    beam: int  # rank among the beams kept at this step
    parent: int  # rank of the beam it extends at the previous step (-1 for the prompt)
    token_id: int
    text: str
    score: float  # cumulative log-probability of the sequence so far


@dataclass(frozen=True)
class BeamResult:
    sequences: tuple[tuple[int, ...], ...]  # best first, generated tokens only
    scores: tuple[float, ...]  # length-normalised, as transformers ranks them
    tree: tuple[BeamNode, ...] = field(default=())


def beam_search(
    lm: LoadedModel,
    input_ids: Sequence[int],
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
) -> BeamResult:
    """Breadth-first beam search, keeping `num_beams` hypotheses; finished ones wait aside.

    The prompt is read once; after that each step feeds only the beams' last tokens and the KV
    cache is reordered to follow the beams that survive (a beam's row is copied to each child).
    """
    prompt = [int(i) for i in input_ids]
    eos = set(eos_ids(lm))
    beams: list[tuple[list[int], float, int]] = [([], 0.0, -1)]  # (tokens, logprob, parent)
    finished: list[tuple[float, list[int]]] = []
    tree: list[BeamNode] = []
    steps = min(max_new_tokens, GENERATION_CAP)
    past = None
    for step in range(steps):
        with heavy_work(), torch.inference_mode():
            if past is None:
                out = lm.model(torch.tensor([prompt]), use_cache=True)
            else:
                last = torch.tensor([[b[0][-1]] for b in beams])  # (beams, 1)
                out = lm.model(last, cache=past, use_cache=True)
            past = out.cache
            logprobs = out.logits[:, -1].float().log_softmax(-1)  # (beams, vocab)
        totals = logprobs + torch.tensor([b[1] for b in beams])[:, None]
        vocab = totals.shape[-1]
        top = totals.flatten().topk(2 * num_beams)
        new_beams: list[tuple[list[int], float, int]] = []
        for score, flat in zip(top.values.tolist(), top.indices.tolist()):
            parent, token = divmod(flat, vocab)
            seq = beams[parent][0] + [token]
            if token in eos:
                if len(new_beams) < num_beams:  # only candidates that rank inside the beam
                    finished.append((score / (len(seq) ** length_penalty), seq))
                continue
            new_beams.append((seq, score, parent))
            if len(new_beams) == num_beams:
                break
        for rank, (seq, score, parent) in enumerate(new_beams):
            text = lm.tokenizer.decode([seq[-1]], clean_up_tokenization_spaces=False)
            tree.append(BeamNode(step, rank, parent, seq[-1], text, score))
        beams = new_beams
        if not beams:
            break
        past.reorder_cache(torch.tensor([parent for _, _, parent in beams]))
        if len(finished) >= num_beams:
            best_running = max(b[1] for b in beams) / (len(beams[0][0]) ** length_penalty)
            if min(sorted(finished, reverse=True)[:num_beams])[0] >= best_running:
                break
    ranked = finished + [(b[1] / (len(b[0]) ** length_penalty), b[0]) for b in beams]
    ranked.sort(key=lambda x: x[0], reverse=True)
    ranked = ranked[:num_beams]
    return BeamResult(
        tuple(tuple(seq) for _, seq in ranked), tuple(s for s, _ in ranked), tuple(tree)
    )
