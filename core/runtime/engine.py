"""One generation engine per model: every running sequence's decode step runs in one batch.

A class of thirty pressing "Generate" at once is served far better by one forward pass over
thirty sequences than by thirty passes one after the other: on two cores the weights (about
540 MB for SmolLM2 in fp32) are read from memory once per step instead of thirty times.

How it works. `core.decoding.generate_stream` opens a `Sequence` here with a `choose` function:
given the next-token logits of its sequence, it picks the token with that learner's own
settings, seed and grammar mask, hands the step to the learner's thread through a queue, and
says whether to go on. A single engine thread per model
  1. reads the new prompts together (one padded prefill per group of similar lengths) and joins
     their KV caches to the batch, left-padded;
  2. runs one batched decode step for every running sequence, with an attention mask and
     explicit position ids, so padding is invisible to the model;
  3. calls each sequence's `choose` with its row of logits and feeds the chosen tokens into the
     next step at once.
Choosing in the engine thread means no step ever waits for a learner's page to draw its last
token: a slow browser reads its queue later, and the batch goes on. A sequence that is closed
(Stop pressed, tab closed) or finished leaves the batch before the next step.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from core.runtime.models import heavy_work, last_only

IDLE_EXIT_S = 10.0  # the engine thread ends after this long with nothing to do
MAX_BATCH = 64
PAD_SLACK = 1.3  # a prefill group may compute at most this many padded tokens per real one

# Given the logits (float32, vocab) after this sequence's last token, return the next token to
# feed, or None when the sequence is finished. Runs in the engine thread.
Choose = Callable[[torch.Tensor], "int | None"]
# Called once when the sequence leaves the engine: None when it finished or was closed.
Finish = Callable[["BaseException | None"], None]


def engine_enabled() -> bool:
    return os.environ.get("LLM_EXPLORER_ENGINE", "1").lower() not in ("0", "false", "no")


@dataclass(eq=False)
class Sequence:
    """One learner's generation, as the engine sees it."""

    engine: Engine
    prompt: list[int]
    choose: Choose
    finish: Finish
    token: int | None = None  # the token to feed at the next step
    closed: bool = False
    valid: int = 0  # real (unmasked) tokens in its cache
    finished: bool = False

    def close(self) -> None:
        """The learner stopped reading: leave the batch before the next step."""
        with self.engine.cond:
            self.closed = True
            self.engine.cond.notify_all()

    def _end(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.finished, self.closed = True, True
            self.finish(error)


class Engine:
    """The batched decode loop for one model."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cond = threading.Condition()
        self.rows: list[Sequence] = []  # in the batch, in cache row order
        self.new: list[Sequence] = []  # opened, prompt not read yet
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # (rows, T) 1 where a real token sits
        self.thread: threading.Thread | None = None
        self.steps = 0  # batched decode steps run (for tests and benchmarks)
        self.prefills = 0  # batched prefill passes run
        self.largest_batch = 0

    # -- the learner's side -------------------------------------------------------------------
    def open(self, prompt: list[int], choose: Choose, finish: Finish) -> Sequence:
        if not prompt:
            raise ValueError("a sequence needs at least one prompt token")
        seq = Sequence(self, [int(t) for t in prompt], choose, finish)
        with self.cond:
            self.new.append(seq)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._loop, name="generation-engine", daemon=True
                )
                self.thread.start()
            self.cond.notify_all()
        return seq

    def active(self) -> int:
        with self.cond:
            return sum(not s.closed for s in self.rows + self.new)

    # -- the engine thread --------------------------------------------------------------------
    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self.cond:
                self._drop_closed()
                if not self.rows and not self.new:
                    if time.monotonic() - idle_since > IDLE_EXIT_S:
                        self.thread = None
                        _forget(self)  # an idle engine must not keep an evicted model alive
                        return
                    self.cond.wait(timeout=0.5)
                    continue
            idle_since = time.monotonic()
            try:
                self._prefill_new()
                self._decode_step()
            except Exception as exc:  # noqa: BLE001 (hand any failure to every learner)
                self._fail_all(exc)

    def _drop_closed(self) -> None:
        for seq in self.new + self.rows:
            if seq.closed:
                seq._end()
        self.new = [s for s in self.new if not s.closed]
        keep = [i for i, s in enumerate(self.rows) if not s.closed]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        index = torch.tensor(keep)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.rows = [self.rows[i] for i in keep]
        first = int(self.mask.any(0).float().argmax())  # drop columns no row uses any more
        if first > 0:
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., first:, :].contiguous()
                layer.values = layer.values[..., first:, :].contiguous()
            self.mask = self.mask[:, first:]

    def _prefill_new(self) -> None:
        with self.cond:
            waiting = sorted((s for s in self.new if not s.closed), key=lambda s: len(s.prompt))[
                : max(0, MAX_BATCH - len(self.rows))
            ]
        for group in _groups(waiting):
            width = len(group[-1].prompt)
            ids = torch.tensor([[0] * (width - len(s.prompt)) + s.prompt for s in group])
            mask = torch.tensor(
                [[0] * (width - len(s.prompt)) + [1] * len(s.prompt) for s in group]
            )
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            extra = last_only(self.model)
            with heavy_work(), torch.inference_mode():
                out = self.model(
                    ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra
                )
            self.prefills += 1
            with self.cond:
                for seq in group:
                    self.new.remove(seq)
                self._join(group, out.cache, mask)
            for i, seq in enumerate(group):
                seq.valid = len(seq.prompt)
                self._choose(seq, out.logits[i, -1])

    def _join(self, group: list[Sequence], cache: Any, mask: torch.Tensor) -> None:
        """Add prefilled rows to the batch, left-padding whichever side is shorter."""
        if self.cache is None:
            self.cache, self.mask, self.rows = cache, mask, list(group)
            return
        t, p = self.mask.shape[1], mask.shape[1]
        if p > t:  # the newcomers are longer: pad every row already here
            for layer in self.cache.layers:
                layer.keys = _pad_left(layer.keys, p - t)
                layer.values = _pad_left(layer.values, p - t)
            self.mask = torch.cat([self.mask.new_zeros(len(self.rows), p - t), self.mask], 1)
            t = p
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([mine.keys, _pad_left(theirs.keys, t - p)], 0)
            mine.values = torch.cat([mine.values, _pad_left(theirs.values, t - p)], 0)
        self.mask = torch.cat([self.mask, torch.cat([mask.new_zeros(len(group), t - p), mask], 1)])
        self.rows.extend(group)

    def _decode_step(self) -> None:
        with self.cond:
            self._drop_closed()
            rows = list(self.rows)
        if not rows:
            return
        tokens = torch.tensor([[s.token] for s in rows])  # (B, 1)
        mask = torch.cat([self.mask, self.mask.new_ones(len(rows), 1)], 1)  # (B, T + 1)
        positions = torch.tensor([[s.valid] for s in rows])  # (B, 1) real tokens before it
        with heavy_work(), torch.inference_mode():
            out = self.model(
                tokens,
                attention_mask=mask,
                position_ids=positions,
                cache=self.cache,
                use_cache=True,
            )
        with self.cond:
            self.cache, self.mask = out.cache, mask
            self.steps += 1
            self.largest_batch = max(self.largest_batch, len(rows))
        for i, seq in enumerate(rows):
            seq.valid += 1
            self._choose(seq, out.logits[i, -1])

    def _choose(self, seq: Sequence, logits: torch.Tensor) -> None:
        """Ask the sequence for its next token; it leaves the batch when it has none."""
        if seq.closed:
            return
        try:
            seq.token = seq.choose(logits.float())
        except Exception as exc:  # noqa: BLE001 (one learner's failure is only theirs)
            seq.token = None
            with self.cond:
                seq._end(exc)
            return
        if seq.token is None:
            with self.cond:
                seq.closed = True

    def _fail_all(self, exc: BaseException) -> None:
        with self.cond:
            for seq in self.rows + self.new:
                seq._end(exc)
            self.rows, self.new, self.cache, self.mask = [], [], None, None


def _groups(seqs: list[Sequence]) -> list[list[Sequence]]:
    """Split prompts (sorted by length) into prefill groups that waste little on padding."""
    groups: list[list[Sequence]] = []
    for seq in seqs:
        g = groups[-1] if groups else None
        if g is not None:
            real = sum(len(s.prompt) for s in g) + len(seq.prompt)
            if len(seq.prompt) * (len(g) + 1) <= PAD_SLACK * real + 16:
                g.append(seq)
                continue
        groups.append([seq])
    return groups


def _pad_left(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, n + T, D) with zeros in front (masked out, never attended to)."""
    if n <= 0:
        return x
    return torch.cat([x.new_zeros(*x.shape[:-2], n, x.shape[-1]), x], -2)


# One engine per model object: a per-process resource (core never imports streamlit, so not an
# st.cache_resource), as many as models loaded; `engine_for` checks the model is the same
# object, so a reused id never reaches another model's engine.
_ENGINES: dict[int, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _forget(engine: Engine) -> None:
    with _ENGINES_LOCK:
        if _ENGINES.get(id(engine.model)) is engine:
            del _ENGINES[id(engine.model)]


def engine_for(model: Any) -> Engine:
    """The engine of this model object (one per model in the process)."""
    with _ENGINES_LOCK:
        eng = _ENGINES.get(id(model))
        if eng is None or eng.model is not model:
            eng = _ENGINES[id(model)] = Engine(model)
        return eng
