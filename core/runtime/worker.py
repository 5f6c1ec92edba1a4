"""A helper process for work whose libraries the server should not keep: one at a time, in order.

umap-learn imports numba, llvmlite and pynndescent: about 350 MB that a process keeps for good
once it has imported them, and 7 s (45 s the first time, while numba compiles). A `Worker`
runs such work in a child process (`python -m core.runtime.worker`) that imports the libraries,
answers requests one after another, and exits after `idle_s` seconds without one, so the
server's own memory never grows by them. The next request starts a new child.

Protocol over the child's stdin/stdout: each message is an 8-byte length and that many bytes of
an `.npz` archive (no pickles: `allow_pickle=False` on both sides) holding a JSON header
(`_header`) and named arrays. A request's header names the function (`module:function`, which
must return a dict of arrays) and its keyword arguments; the answer's header says `ok`, the
seconds the work took and the child's peak memory, or the error. A child that dies (killed,
out of memory) raises `WorkerDied` with one sentence a page can show; the next call starts a
fresh child.

This module never imports a lesson: the child imports the function's module only when asked.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository: `core` is importable from here
LENGTH = struct.Struct("<Q")
MAX_MESSAGE = 1 << 30  # a corrupt length never makes the reader allocate more than 1 GB


class WorkerDied(RuntimeError):
    """The child stopped before it answered (killed, out of memory, crashed)."""


class WorkerError(RuntimeError):
    """The function raised in the child; the message is its exception's."""


# ------------------------------------------------------------------------------ messages --


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, _header=np.array(json.dumps(header)), **(arrays or {}))
    body = buf.getvalue()
    return LENGTH.pack(len(body)) + body


def decode(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays.pop("_header")))
    return header, arrays


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None  # the other end closed the pipe
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    head = _read_exact(fd, LENGTH.size)
    if head is None:
        return None
    (n,) = LENGTH.unpack(head)
    if n > MAX_MESSAGE:
        raise ValueError(f"message of {n} bytes refused")
    body = _read_exact(fd, n)
    return None if body is None else decode(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --------------------------------------------------------------------------------- child --


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def echo(**arrays: np.ndarray) -> dict[str, np.ndarray]:
    """Returns what it was given: a request that checks the helper is alive and answering."""
    return arrays


def _call(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    import importlib

    t0 = time.perf_counter()
    try:
        module, _, name = str(header["fn"]).partition(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(**arrays, **header.get("kwargs", {}))
        meta = {
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "cpu_s": time.process_time(),  # the child's CPU time since it started
            "peak_mb": peak_rss_mb(),
        }
        return encode(meta, {k: np.asarray(v) for k, v in result.items()})
    except Exception as exc:  # the parent turns it into WorkerError; the child keeps serving
        return encode({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def serve(idle_s: float, fd_in: int = 0, fd_out: int = 1) -> int:
    """The child's loop: answer requests in order; exit 0 after `idle_s` without one, or when
    the parent closes the pipe (the server stopped)."""
    while True:
        ready, _, _ = select.select([fd_in], [], [], idle_s)
        if not ready:
            return 0
        request = read_message(fd_in)
        if request is None:
            return 0
        _write_all(fd_out, _call(*request))


# -------------------------------------------------------------------------------- parent --


def writable_dir(preferred: Path, name: str) -> Path:
    """`preferred` if it can be created and written to, else a folder of that name under the
    system's temporary folder (a read-only home must not stop the work, only its caching)."""
    for folder in (preferred, Path(tempfile.gettempdir()) / f"llm-explorer-{os.getuid()}" / name):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return folder
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix=f"llm-explorer-{name}-"))


def numba_cache_dir() -> Path:
    """Where numba keeps the machine code it compiles (`NUMBA_CACHE_DIR`), so only the first
    map after an install pays the compile: `numba` under the app's cache folder
    (`LLM_EXPLORER_CACHE`, else ~/.cache/llm-explorer), or a temporary folder when that one
    cannot be written."""
    from core.runtime.models import cache_root  # the parent has the model layer loaded already

    return writable_dir(cache_root() / "numba", "numba")


class Worker:
    """One child process, started on demand, used by one caller at a time (a lock: requests
    from many sessions are answered in the order they got the lock)."""

    def __init__(
        self, idle_s: float = 60.0, env: dict[str, str] | None = None, threads: int = 1
    ) -> None:
        self.idle_s = idle_s
        self.env = dict(env or {})
        self.threads = threads
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # children started so far (a test and the bench read it)
        self.last_peak_mb = 0.0  # the child's peak memory at its last answer
        self.last_header: dict[str, Any] = {}  # the last answer's header (seconds, cpu_s)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        n = str(self.threads)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": n,
            "NUMBA_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n,
            "PYTHONWARNINGS": "ignore",
            **self.env,
        }
        self.starts += 1
        return subprocess.Popen(
            [sys.executable, "-m", "core.runtime.worker", str(self.idle_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            close_fds=True,
        )

    def _alive(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self._reap()
            self.proc = self._start()
        return self.proc

    def _reap(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc.wait()
            self.proc = None

    def _exchange(
        self, message: bytes, on_wait: Callable[[float], None] | None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        proc = self._alive()
        assert proc.stdin is not None and proc.stdout is not None
        t0 = time.monotonic()
        try:
            _write_all(proc.stdin.fileno(), message)
            while on_wait is not None and not select.select([proc.stdout], [], [], 0.5)[0]:
                on_wait(time.monotonic() - t0)  # may raise (a Stop click): handled below
            return read_message(proc.stdout.fileno())
        except (BrokenPipeError, ConnectionResetError):
            return None
        except BaseException:
            # interrupted mid-answer: the pipe now holds half a message, so this child is of
            # no further use; the next request starts a fresh one
            proc.kill()
            self._reap()
            raise

    def call(
        self,
        fn: str,
        arrays: dict[str, np.ndarray],
        on_wait: Callable[[float], None] | None = None,
        **kwargs: Any,
    ) -> dict[str, np.ndarray]:
        """Run `fn(**arrays, **kwargs)` in the child; its dict of arrays. `on_wait(seconds)` is
        called every half second while the child works. Raises `WorkerDied` when the child
        stopped before answering, `WorkerError` when `fn` raised."""
        message = encode({"fn": fn, "kwargs": kwargs}, arrays)
        with self.lock:
            for attempt in range(2):
                answer = self._exchange(message, on_wait)
                if answer is not None:
                    break
                code = self.proc.wait() if self.proc is not None else None
                self._reap()
                # exit code 0 is the idle exit racing this request: ask a fresh child once
                if code != 0 or attempt == 1:
                    raise WorkerDied(
                        f"The helper process stopped before it answered (exit code {code}); "
                        "nothing was kept: press the button again to start a new one."
                    )
        header, result = answer
        if not header.get("ok"):
            raise WorkerError(str(header.get("error", "unknown error")))
        self.last_peak_mb = float(header.get("peak_mb", 0.0))
        self.last_header = header
        return result

    def stop(self) -> None:
        """Close the child's input (it exits at once) and wait for it."""
        with self.lock:
            self._reap()


def main(argv: list[str]) -> int:
    # the protocol gets a private copy of stdout; fd 1 then points where stderr goes, so a
    # library that prints cannot corrupt a message
    out = os.dup(1)
    os.dup2(2, 1)
    return serve(float(argv[1]) if len(argv) > 1 else 60.0, 0, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
