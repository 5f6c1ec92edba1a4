"""core.runtime.memory: handing freed pages back must not fork the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.runtime import memory

ROOT = Path(__file__).resolve().parent.parent


def test_trim_never_starts_a_subprocess(monkeypatch):
    started = []
    real = subprocess.Popen.__init__

    def spy(self, *args, **kwargs):
        started.append(args[:1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    memory._libc.cache_clear()  # the first lookup too: find_library would run ldconfig
    for _ in range(3):
        assert isinstance(memory.trim(), bool)
    assert started == []
    assert memory._libc() is memory._libc()


_FRAGMENT = """
import sys
import numpy as np
from core.runtime import memory

def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) // 1024

if sys.argv[1] == 'fixed':
    memory.keep_memory_low(every_s=3600)  # no trimming during the run: only the threshold
np.ones(1 << 21).sum()  # a 16 MB block freed: glibc's own threshold rises to 16 MB
big, small = [], []
for _ in range(30):  # 4 MB tensors with small survivors between them, as in a forward pass
    big.append(np.ones(1 << 19))
    small.append(np.ones(1000))
before = rss()
del big
print(before - rss())
"""


def _freed_mb(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return int(out.stdout.split()[-1])


def test_large_blocks_go_back_to_the_system_when_freed():
    """120 MB of 4 MB arrays freed between small survivors: with glibc's own threshold they sit
    in the heap and RSS stays; with the fixed 1 MB threshold they are unmapped at once."""
    if memory._libc() is None:
        pytest.skip("not glibc")
    assert _freed_mb("fixed") > 100
    assert _freed_mb("default") < 20  # the same run without it: the reference
