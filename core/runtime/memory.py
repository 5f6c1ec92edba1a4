"""Keeping the server's memory down: fewer malloc arenas, freed pages handed back to the OS.

glibc gives each thread that allocates its own arena (up to 8 per core), and Streamlit runs
every script run in a new thread, so freed memory is scattered over many arenas and the
process's RSS stays at its high-water mark. Two arenas are enough for a server whose heavy
work is serialised, and a daemon thread calls `malloc_trim` every few seconds so that pages
freed after a forward pass, a training run or an evicted cache entry go back to the system.
Both are no-ops where glibc is absent (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time

M_ARENA_MAX = -8  # mallopt parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 1 << 20  # blocks this large get their own mapping, unmapped when freed
TRIM_EVERY_S = 5.0

_started = False
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """glibc, looked up once: `ctypes.util.find_library` runs `ldconfig` in a subprocess, and
    forking a 1.2 GB server every few seconds costs time (and doubles its RSS for a moment)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        name = ctypes.util.find_library("c")
        if not name:
            return None
        try:
            libc = ctypes.CDLL(name)
        except OSError:
            return None
    if not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None  # not glibc (macOS, musl)
    return libc


def trim() -> bool:
    """Hand freed heap pages back to the OS now; True if glibc did release some."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))


def keep_memory_low(arenas: int = ARENAS, every_s: float = TRIM_EVERY_S) -> bool:
    """Limit malloc arenas, fix the mmap threshold, and start the trimming thread (once per
    process)."""
    global _started
    with _lock:
        if _started:
            return True
        libc = _libc()
        if libc is None:
            return False
        libc.mallopt(M_ARENA_MAX, arenas)
        # A fixed threshold: glibc's own rises to the size of any mapped block once it is freed
        # (up to 32 MB), after which a forward pass's multi-MB tensors come from the heap and
        # stay there; with 1 MB they are unmapped when freed. Measured: -65 MB of RSS once the
        # trace cache is full, -60 MB at the page tour's peak (bench/server_bench.py).
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        threading.Thread(
            target=_trim_loop, args=(every_s,), name="malloc-trim", daemon=True
        ).start()
        _started = True
        return True


def _trim_loop(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        trim()
