"""One least-recently-used store for the whole app, measured in bytes, and the process-wide byte
budget built on it.

The caching rule (README, "Caching rule"): models and other per-process resources go in
`st.cache_resource`; per-prompt tensors (traces, captures, anything that grows with the prompt)
in `byte_cached`, under this module's byte budget; small frames and tables in `st.cache_data`;
the results of long jobs in `components.jobs`' store, which is a `ByteBudget` too. A plain
`functools.lru_cache` or module dict is kept only for a tiny, bounded, per-process constant
(a parsed data file, a lookup table), with a comment saying so.

Streamlit's own caches count entries (24 traces, 64 results...), but one trace of a 256-token
prompt is about 19 MB, so thirty prompts took the server past 2.5 GB. `byte_cached` is a
drop-in for `st.cache_resource` on functions whose results are read-only data: every wrapped
function shares one `ByteBudget`, each value is measured with `nbytes` when stored, and storing
a new value evicts the least recently used ones until the total fits. A value is computed once
even when several sessions ask for it at the same moment, and a page that still holds an
evicted value keeps it until its run ends (eviction only forgets it).

The budget is `LLM_EXPLORER_CACHE_MB` megabytes (default 64): three traces of 256-token
prompts (19 MB each), about nine attention traces at 64 tokens (7 MB), or dozens of short
prompts. With the model's 540 MB, torch's own memory and the pages' tokenizers and indexes, a
full cache leaves the server at about 1.45 GB after every page has been opened, and room for a
second model on a 2.7 GB host (bench/server_bench.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from core.runtime.memory import trim

F = TypeVar("F", bound=Callable[..., Any])
BUDGET_ENV = "LLM_EXPLORER_CACHE_MB"
DEFAULT_BUDGET_MB = 64
_OBJECT_OVERHEAD = 64  # bytes counted for any small object we do not look inside


def nbytes(value: Any, _seen: set[int] | None = None) -> int:
    """An estimate of the memory a cached value holds: arrays, tensors, DataFrames, and the
    dataclasses, tuples, lists and dicts made of them (shared parts counted once)."""
    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else None
        return value.nbytes + _OBJECT_OVERHEAD if base is None or id(base) not in seen else 0
    if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        return value.element_size() * value.nelement() + _OBJECT_OVERHEAD
    if "pandas" in sys.modules and isinstance(
        value, (sys.modules["pandas"].DataFrame, sys.modules["pandas"].Series)
    ):
        return int(
            value.memory_usage(deep=True).sum()
            if value.ndim == 2
            else value.memory_usage(deep=True)
        )
    if isinstance(value, (str, bytes, bytearray, int, float, bool, complex)) or value is None:
        return sys.getsizeof(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _OBJECT_OVERHEAD + sum(
            nbytes(getattr(value, f.name), seen) for f in dataclasses.fields(value)
        )
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(
            nbytes(k, seen) + nbytes(v, seen) for k, v in value.items()
        )
    if isinstance(value, (tuple, list, set, frozenset)):
        return sys.getsizeof(value) + sum(nbytes(v, seen) for v in value)
    return sys.getsizeof(value)


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise, so RSS would stay
    high after an eviction). A no-op where glibc's malloc_trim is missing."""
    trim()


def _family(key: Hashable) -> Hashable:
    """The function a key belongs to: byte_cached keys start with the function's name."""
    return key[0] if isinstance(key, tuple) and key else key


class KeyedLocks:
    """One lock per key, existing only while somebody holds it or waits for it: a run that ends
    (finished, failed or stopped) leaves nothing behind, so the table never grows with the
    number of distinct keys ever computed."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list] = {}  # key -> [lock, holders and waiters]

    @contextmanager
    def holding(self, key: Hashable, blocking: bool = True, timeout: float = -1) -> Iterator[bool]:
        """`with locks.holding(key) as got:` holds the key's lock when `got` (with
        `blocking=False` or a `timeout`, `got` may be False: somebody else holds it)."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        got = False
        try:
            got = entry[0].acquire(blocking, timeout) if blocking else entry[0].acquire(False)
            yield got
        finally:
            if got:
                entry[0].release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def held(self) -> list[Hashable]:
        """Keys whose lock somebody holds right now (a job running, a value being computed)."""
        with self._guard:
            return [k for k, (lock, _) in self._locks.items() if lock.locked()]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class ByteBudget:
    """The app's one LRU: values by key, their sizes, one total kept under `budget` bytes (and
    at most `max_entries` values when given), least recently used dropped first; plus a lock
    per key being computed (`locks`), so a value is computed once however many ask at once.

    `keep_newest`: a value larger than the whole budget is still kept (alone) until the next
    one arrives, instead of being refused; the job store needs that, so a long job's result
    survives the page's next rerun whatever its size."""

    def __init__(
        self, budget: int, max_entries: int | None = None, keep_newest: bool = False
    ) -> None:
        self.budget = budget
        self.max_entries = max_entries
        self.keep_newest = keep_newest
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.locks = KeyedLocks()
        self._last_size: dict[Hashable, int] = {}  # by function: its latest value's size
        self.total = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key][0]

    def put(self, key: Hashable, value: Any) -> int:
        """Store `value` (unless it alone exceeds the budget and `keep_newest` is off); returns
        its size in bytes."""
        size = nbytes(value)
        with self._lock:
            if key in self._items:
                self.total -= self._items.pop(key)[1]
            if size <= self.budget or self.keep_newest:
                self._items[key] = (value, size)
                self.total += size
            self._last_size[_family(key)] = size
            evicted = self._evict_above(self.budget, keep=1 if self.keep_newest else 0)
        if evicted:
            _release_freed_memory()
        return size

    def pop(self, key: Hashable) -> None:
        """Forget one value (a "Run again")."""
        with self._lock:
            if key in self._items:
                self.total -= self._items.pop(key)[1]

    def make_room(self, key: Hashable) -> None:
        """Before a value for `key` is computed: evict least recently used entries until one
        more value the size of its function's latest would fit. The evicted entries are freed
        before the new one's work allocates, not after it, so the peak is lower by about one
        entry (a 256-token trace: 19 MB)."""
        with self._lock:
            need = self._last_size.get(_family(key), 0)
            evicted = self._evict_above(max(0, self.budget - need))
        if evicted:
            _release_freed_memory()

    def _evict_above(self, limit: int, keep: int = 0) -> bool:
        """Drop least recently used entries until the total is at most `limit` and the count
        at most `max_entries`, keeping the `keep` most recent ones whatever (lock held)."""
        evicted = False
        most = self.max_entries if self.max_entries is not None else len(self._items)
        while len(self._items) > keep and (self.total > limit or len(self._items) > most):
            _, (_, old) = self._items.popitem(last=False)
            self.total -= old
            self.evictions += 1
            evicted = True
        return evicted

    def clear(self, prefix: Hashable | None = None) -> None:
        with self._lock:
            for key in [k for k in self._items if prefix is None or _family(k) == prefix]:
                self.total -= self._items.pop(key)[1]
        _release_freed_memory()

    def sizes(self) -> dict[Hashable, int]:
        with self._lock:
            return {k: size for k, (_, size) in self._items.items()}


def _budget_from_env() -> int:
    try:
        mb = float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_MB))
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return int(max(mb, 1.0) * 1e6)


# One store per process, shared by every session and every wrapped function.
STORE = ByteBudget(_budget_from_env())


def byte_cached(spinner: str | None = None, store: ByteBudget | None = None) -> Callable[[F], F]:
    """Cache a function of hashable arguments in the process-wide byte budget.

    Like `st.cache_resource`, the cached object itself is returned (no copy): wrap only
    functions whose results nobody mutates (frozen dataclasses, read-only arrays).
    `wrapper.clear()` forgets this function's entries."""

    def decorate(func: F) -> F:
        name = f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target = store if store is not None else STORE
            key = (name, args, tuple(sorted(kwargs.items())))
            found, value = target.get(key)
            if found:
                return value
            with target.locks.holding(key):  # a second session waits for the first's result
                found, value = target.get(key)
                if found:
                    return value
                target.make_room(key)
                if spinner:
                    with st.spinner(spinner):
                        value = func(*args, **kwargs)
                else:
                    value = func(*args, **kwargs)
                target.put(key, value)
                return value

        wrapper.clear = lambda: (store if store is not None else STORE).clear(name)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
