"""Memory as a budget: the server's limit, what is resident, and whether a new thing fits.

The limit is, in order: the operator's setting `LLM_EXPLORER_MEMORY_MB`; else the container's
cgroup limit (v2 `memory.max`, v1 `memory.limit_in_bytes`) when there is one; else
`DEFAULT_LIMIT_MB` (2,700 MB, Streamlit Community Cloud's size), never more than the machine's
RAM. What is used is measured, not guessed: the anonymous resident memory of this process and
of its child processes (a worker such as UMAP's counts while it runs); loaded weights are
copied out of their memory-mapped files (`models.own_memory`) so that they count there too. What is about to be used is each
thing's own estimate: a model's float32 weights, the fine-tune copy, the int8 copy, a job's
working memory; while a job runs its reservation is counted beside the measured RSS, so two
jobs started at the same moment cannot both take the last free megabytes.

A request that does not fit waits (in arrival order) for reservations to end, and is refused
with a sentence saying what it needed and what was free, rather than being started and killing
the server. Nothing here imports streamlit: components turn verdicts into messages.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIMIT_ENV = "LLM_EXPLORER_MEMORY_MB"
DEFAULT_LIMIT_MB = 2700  # Streamlit Community Cloud gives an app about 2.7 GB
SAFETY_MB = 250  # kept free: the code's file pages (about 170 MB), the allocator's slack
MB = 1_000_000
NO_LIMIT = 1 << 60  # cgroup v1 writes about 9.2e18 when there is none


class OverBudget(RuntimeError):
    """The thing asked for would push the server past its memory limit."""


@dataclass(frozen=True)
class Limit:
    mb: int
    source: str  # "setting LLM_EXPLORER_MEMORY_MB", "cgroup v2 memory.max", "default"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max": no limit
        return None
    value = int(text)
    return value if 0 < value < NO_LIMIT else None


def cgroup_limit_bytes(root: Path = Path("/sys/fs/cgroup")) -> tuple[int, str] | None:
    """The container's memory limit and which file said so, or None when unlimited."""
    v2 = _read_int(root / "memory.max")
    if v2 is not None:
        return v2, "cgroup v2 memory.max"
    v1 = _read_int(root / "memory" / "memory.limit_in_bytes")
    if v1 is not None:
        return v1, "cgroup v1 memory.limit_in_bytes"
    return None


def machine_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(env: dict[str, str] | None = None, cgroup_root: Path | None = None) -> Limit:
    env = os.environ if env is None else env
    setting = env.get(LIMIT_ENV, "").strip()
    if setting:
        try:
            mb = float(setting)
        except ValueError:
            mb = 0.0
        if mb > 0:
            return Limit(int(mb), f"the setting {LIMIT_ENV}")
    found = cgroup_limit_bytes(cgroup_root or Path("/sys/fs/cgroup"))
    if found is not None:
        return Limit(found[0] // MB, found[1])
    ram = machine_bytes()
    if ram is not None and ram // MB < DEFAULT_LIMIT_MB:
        return Limit(ram // MB, "the machine's memory")
    return Limit(DEFAULT_LIMIT_MB, "the default (Streamlit Community Cloud's size)")


# --- what is resident ------------------------------------------------------------------------


def _rss_of(pid: int | str) -> int:
    """A process's memory that the kernel cannot reclaim: anonymous and shared pages. File
    pages (the code of torch and friends, page cache of files read once) are dropped under
    pressure before anything is killed, and are covered by SAFETY_MB."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssShmem:")):
                total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total


def _children(pid: int | str) -> list[str]:
    out: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += (task / "children").read_text().split()
    except OSError:
        pass
    return out


def used_bytes(pid: int | None = None) -> int:
    """Resident memory of this process and every process it started (workers)."""
    pending, total, seen = [str(pid or os.getpid())], 0, set()
    while pending:
        p = pending.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_of(p)
        pending += _children(p)
    return total


def tensor_bytes(model: Any) -> int:
    """The bytes of a torch module's parameters and buffers, shared storages counted once."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def float32_bytes_of_safetensors(paths: list[Path]) -> int | None:
    """What a checkpoint's weights take once loaded in float32, read from the safetensors
    headers alone (a bfloat16 download doubles in memory)."""
    import json
    import struct

    total = 0
    try:
        for path in paths:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            for name, info in header.items():
                if name != "__metadata__":
                    numel = 1
                    for d in info["shape"]:
                        numel *= int(d)
                    total += numel * 4
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    return total


# --- reservations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    fits: bool
    need_mb: int
    free_mb: int  # under the limit, after the safety margin and running reservations
    limit: Limit

    def sentence(self, what: str) -> str:
        return (
            f"{what} needs about {self.need_mb:,} MB of memory and this server has "
            f"{max(self.free_mb, 0):,} MB free of its {self.limit.mb:,} MB budget "
            f"(set by {self.limit.source})."
        )


class Budget:
    """Reservations under one limit, granted in arrival order."""

    def __init__(self, limit: Limit | None = None, measure=used_bytes) -> None:
        self.limit = limit or memory_limit()
        self._measure = measure
        self._cond = threading.Condition()
        self._reserved: dict[int, tuple[str, int]] = {}
        self._queue: list[int] = []
        self._next = 0
        self.peak_used = 0

    def reserved_bytes(self) -> int:
        with self._cond:
            return sum(b for _, b in self._reserved.values())

    def reservations(self) -> list[tuple[str, int]]:
        with self._cond:
            return list(self._reserved.values())

    def check(self, need: int) -> Verdict:
        used = self._measure()
        self.peak_used = max(self.peak_used, used)
        free = self.limit.mb * MB - SAFETY_MB * MB - used - self.reserved_bytes()
        return Verdict(need <= free, -(-need // MB), free // MB, self.limit)

    def acquire(self, what: str, need: int, wait_s: float = 0.0) -> int:
        """Reserve `need` bytes (a ticket for `release`); wait up to `wait_s` seconds for other
        reservations to end, then raise OverBudget with a sentence."""
        with self._cond:
            ticket = self._next
            self._next += 1
            self._queue.append(ticket)
            deadline = time.monotonic() + wait_s
            try:
                while True:
                    if self._queue[0] == ticket:
                        verdict = self.check(need)
                        if verdict.fits:
                            self._reserved[ticket] = (what, need)
                            return ticket
                        if not self._reserved:  # nothing that will end: no use waiting
                            raise OverBudget(verdict.sentence(what))
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise OverBudget(self.check(need).sentence(what))
                    self._cond.wait(min(left, 1.0))
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, ticket: int) -> None:
        with self._cond:
            self._reserved.pop(ticket, None)
            self._cond.notify_all()

    @contextmanager
    def reserve(self, what: str, need: int, wait_s: float = 0.0) -> Iterator[None]:
        ticket = self.acquire(what, need, wait_s)
        try:
            yield
        finally:
            self.release(ticket)


_BUDGET: Budget | None = None
_BUDGET_LOCK = threading.Lock()


def budget() -> Budget:
    """The process's budget (its limit read once, at first use)."""
    global _BUDGET
    with _BUDGET_LOCK:
        if _BUDGET is None:
            _BUDGET = Budget()
        return _BUDGET


# What jobs cost besides the resident model, measured on SmolLM2-135M (bench/cloud_bench.py):
# page 16's LoRA fine-tune deep-copies the model (its float32 weights) plus activations and
# optimizer state for a 64-token batch; page 18's int8 copy holds its linear weights at one
# byte each (embeddings and norms stay shared).
FINE_TUNE_EXTRA_MB = 120
INT8_FRACTION = 0.30
JOB_DEFAULT_MB = 100  # any other page's job: a forward pass over a batch, a small training run


def fine_tune_bytes(model: Any) -> int:
    return tensor_bytes(model) + FINE_TUNE_EXTRA_MB * MB


def int8_bytes(model: Any) -> int:
    return int(tensor_bytes(model) * INT8_FRACTION)
