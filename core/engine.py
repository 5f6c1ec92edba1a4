"""One generation engine per model: every waiting sequence's decode step runs in one batch.

A class of thirty pressing "Generate" at once is served far better by one forward pass over
thirty sequences than by thirty passes one after the other: on two cores the weights (about
540 MB for SmolLM2 in fp32) are read from memory once per step instead of thirty times.

How it works. `core.decoding.generate_stream` opens a `Sequence` here and asks it for the
next-token logits, handing back the token it chose; choosing (filters, seed, grammar masks)
stays in the learner's own thread, so every sequence keeps its own settings. A single engine
thread per model
  1. reads each new prompt alone (prefill) and joins its KV cache to the batch, left-padded;
  2. runs one batched decode step for all sequences that are waiting, with an attention mask
     and explicit position ids, so padding and "holes" are invisible to the model;
  3. hands each sequence its row of logits.
A sequence whose learner has not answered yet when a step runs gets a masked hole in its cache
for that step instead of holding everyone up. Closed sequences leave the batch at once.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from core.models import heavy_work

GATHER_S = 0.02  # after the first sequence is ready, wait this long for the others to catch up
IDLE_EXIT_S = 10.0  # the engine thread ends after this long with nothing to do
MAX_BATCH = 64


def engine_enabled() -> bool:
    return os.environ.get("LLM_EXPLORER_ENGINE", "1").lower() not in ("0", "false", "no")


@dataclass(eq=False)
class Sequence:
    """One learner's generation, as the engine sees it."""

    engine: Engine
    prompt: list[int]
    token: int | None = None  # the token to feed at the next step
    ready: bool = False  # the learner is waiting for logits
    closed: bool = False
    joined: bool = False
    valid: int = 0  # real (unmasked) tokens in its cache
    logits: torch.Tensor | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def next_logits(self, token: int | None = None) -> torch.Tensor:
        """Logits for the next position: after the prompt (token None) or after `token`."""
        if self.closed:
            raise RuntimeError("this sequence is closed")
        self.done.clear()
        with self.engine.cond:
            self.token = token
            self.ready = True
            self.engine.cond.notify_all()
        self.done.wait()
        if self.error is not None:
            raise RuntimeError(f"generation failed: {self.error}") from self.error
        assert self.logits is not None
        return self.logits

    def close(self) -> None:
        with self.engine.cond:
            self.closed = True
            self.engine.cond.notify_all()


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
        self.largest_batch = 0

    # -- the learner's side -------------------------------------------------------------------
    def open(self, prompt: list[int]) -> Sequence:
        if not prompt:
            raise ValueError("a sequence needs at least one prompt token")
        seq = Sequence(self, [int(t) for t in prompt])
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
            return sum(not s.closed for s in self.rows) + sum(not s.closed for s in self.new)

    # -- the engine thread --------------------------------------------------------------------
    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self.cond:
                self._drop_closed()
                work = [s for s in self.new if s.ready] or [s for s in self.rows if s.ready]
                if not work:
                    if (
                        not self.rows
                        and not self.new
                        and time.monotonic() - idle_since > IDLE_EXIT_S
                    ):
                        self.thread = None
                        _forget(self)  # an idle engine must not keep an evicted model alive
                        return
                    self.cond.wait(timeout=0.5)
                    continue
            idle_since = time.monotonic()
            self._gather()
            try:
                self._prefill_new()
                self._decode_step()
            except Exception as exc:  # noqa: BLE001 (hand any failure to every waiting learner)
                self._fail_all(exc)

    def _gather(self) -> None:
        """Give the other learners a moment to hand in their tokens, so fewer holes are made."""
        deadline = time.monotonic() + GATHER_S
        with self.cond:
            while time.monotonic() < deadline:
                waiting = [s for s in self.rows if not s.ready and not s.closed]
                if not waiting:
                    return
                self.cond.wait(timeout=max(0.0, deadline - time.monotonic()))

    def _drop_closed(self) -> None:
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
            batch = [s for s in self.new if s.ready and not s.closed][: MAX_BATCH - len(self.rows)]
        for seq in batch:
            with heavy_work(), torch.inference_mode():
                out = self.model(torch.tensor([seq.prompt]), use_cache=True)
            with self.cond:
                self.new.remove(seq)
                if seq.closed:
                    continue
                self._join(seq, out.cache)
                seq.valid = len(seq.prompt)
                seq.joined = True
                self._deliver(seq, out.logits[0, -1])

    def _join(self, seq: Sequence, cache: Any) -> None:
        """Add a prefilled sequence's cache as a new row, left-padding whichever side is shorter."""
        p = len(seq.prompt)
        if self.cache is None:
            self.cache, self.mask, self.rows = cache, torch.ones(1, p, dtype=torch.long), [seq]
            return
        t = self.mask.shape[1]
        if p > t:  # the newcomer is longer: pad every row already here
            for layer in self.cache.layers:
                layer.keys = _pad_left(layer.keys, p - t)
                layer.values = _pad_left(layer.values, p - t)
            self.mask = torch.cat(
                [torch.zeros(len(self.rows), p - t, dtype=torch.long), self.mask], 1
            )
            t = p
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([mine.keys, _pad_left(theirs.keys, t - p)], 0)
            mine.values = torch.cat([mine.values, _pad_left(theirs.values, t - p)], 0)
        row = torch.cat([torch.zeros(t - p, dtype=torch.long), torch.ones(p, dtype=torch.long)])
        self.mask = torch.cat([self.mask, row[None]], 0)
        self.rows.append(seq)

    def _decode_step(self) -> None:
        with self.cond:
            rows = list(self.rows)
            ready = [s.ready and not s.closed and s.token is not None for s in rows]
        if not any(ready):
            return
        tokens = torch.tensor([[s.token if r else 0] for s, r in zip(rows, ready)])  # (B, 1)
        step_mask = torch.tensor(ready, dtype=torch.long)[:, None]
        mask = torch.cat([self.mask, step_mask], 1)  # (B, T + 1)
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
            self.largest_batch = max(self.largest_batch, sum(ready))
            for i, (seq, r) in enumerate(zip(rows, ready)):
                if r:
                    seq.valid += 1
                    self._deliver(seq, out.logits[i, -1])

    def _deliver(self, seq: Sequence, logits: torch.Tensor) -> None:
        seq.logits = logits.float().clone()
        seq.ready = False
        seq.token = None
        seq.done.set()

    def _fail_all(self, exc: BaseException) -> None:
        with self.cond:
            for seq in self.rows + self.new:
                if seq.ready:
                    seq.error = exc
                    seq.ready = False
                    seq.done.set()
                seq.closed = True
            self.rows, self.new, self.cache, self.mask = [], [], None, None


def _pad_left(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, n + T, D) with zeros in front (masked out, never attended to)."""
    if n <= 0:
        return x
    return torch.cat([x.new_zeros(*x.shape[:-2], n, x.shape[-1]), x], -2)


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
