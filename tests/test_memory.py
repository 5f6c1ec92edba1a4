"""core.memory: handing freed pages back must not fork the server."""

from __future__ import annotations

import subprocess

from core import memory


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
