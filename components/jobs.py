"""Long work started from a button: progress, a Stop, an honest estimate, one result for all.

Every page that trains, sweeps or measures something for more than a second or two goes through
`run_job`. The work runs in the learner's own script run (so Streamlit's rerun on any click,
the Stop button included, interrupts it at its next progress report, and every `with` block in
core unwinds), while the finished result goes into a process-wide store shared by every
session: a second learner asking for the same job with the same settings gets it at once, and
one who asks while it is still running waits for that run instead of starting another.

Never call `run_job` inside an `st.fragment`: a click inside a fragment does not interrupt a
running script in Streamlit 1.67, so Stop would only act after the whole job (a test scans
`pages/` for this).

Core functions take a `report(fraction, text, partial=None)` callback (core never imports
streamlit): `fraction` in [0, 1], a short status text, and optionally a partial result (a loss
curve so far) that the page draws live through `on_partial`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from core.runtime.budget import OverBudget, budget

T = TypeVar("T")
Report = Callable[..., None]  # report(fraction: float, text: str = "", partial: Any = None)

PARTIAL_REDRAW_S = 0.25  # at most four live redraws a second: drawing costs more than a step


@dataclass(frozen=True)
class Finished:
    value: Any
    seconds: float  # wall time of the run that produced it
    finished_at: float  # time.time()


class JobStore:
    """Finished results by key (least recently used dropped first) and one lock per running key."""

    def __init__(self, max_entries: int = 48) -> None:
        self._lock = threading.Lock()
        self._results: OrderedDict[Hashable, Finished] = OrderedDict()
        self._running: dict[Hashable, threading.Lock] = {}
        self.max_entries = max_entries

    def get(self, key: Hashable) -> Finished | None:
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def put(self, key: Hashable, finished: Finished) -> None:
        with self._lock:
            self._results[key] = finished
            self._results.move_to_end(key)
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._results.pop(key, None)

    def key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._running.setdefault(key, threading.Lock())


@st.cache_resource(show_spinner=False)
def job_store() -> JobStore:
    return JobStore()


def finished_result(key: Hashable) -> Finished | None:
    """The shared result of a job that has already run with these settings, if any."""
    return job_store().get(key)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else _age(seconds)


def _estimate_text(estimate_s: float) -> str:
    if estimate_s < 1.5:
        return "about a second"
    return f"about {_duration(estimate_s)}"


class _Progress:
    """The callback handed to the work: moves the bar, draws partial results, records state."""

    def __init__(
        self, state_key: str, estimate_s: float, on_partial: Callable[[Any], None] | None
    ) -> None:
        self.state_key = state_key
        self.estimate_s = estimate_s
        self.on_partial = on_partial
        self.started = time.monotonic()
        self.bar = st.progress(0.0, text="Starting…")
        self.live = st.empty() if on_partial else None
        self._last_draw = 0.0

    def __call__(self, fraction: float, text: str = "", partial: Any = None) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        elapsed = time.monotonic() - self.started
        if fraction > 0.02:
            left = elapsed * (1 - fraction) / fraction
            eta = f" · about {_duration(left)} left"
        else:
            eta = f" · estimated {_duration(self.estimate_s)} in all"
        st.session_state[self.state_key] = (fraction, text, elapsed)
        self.bar.progress(fraction, text=f"{text}{eta}" if text else eta.lstrip(" ·"))
        now = time.monotonic()
        if (
            partial is not None
            and self.live is not None
            and (now - self._last_draw >= PARTIAL_REDRAW_S or fraction >= 1.0)
        ):
            self._last_draw = now
            with self.live.container():
                self.on_partial(partial)


def run_job(
    key: Hashable,
    work: Callable[[Report], T],
    *,
    start_label: str,
    estimate_s: float,
    caps: str = "",
    on_partial: Callable[[Any], None] | None = None,
    rerun_label: str | None = "Run again",
    memory: Callable[[], tuple[str, int]] | None = None,
) -> T | None:
    """A start button for `work(report)`, its progress and Stop, and the shared result.

    `memory()` gives (what, bytes) for a job that holds much memory beyond the shared model
    (page 16's fine-tune copy): the bytes are reserved under the server's budget for the run
    (`core.runtime.budget`); when they do not fit, the job waits up to `MEMORY_WAIT_S` for
    other jobs to end, then says why it cannot run instead of starting.

    `key` must contain every setting the result depends on (page, job name, model id, sliders).
    Returns the finished value (from this run or any earlier one in the process), or None when
    the job has not run yet with these settings. `caps` states the job's limits on the button's
    caption; `estimate_s` is the caller's honest guess, shown before the run and refined by the
    measured progress during it.
    """
    store = job_store()
    widget = f"job.{abs(hash(key)) % 10**10}"
    state_key = f"{widget}.progress"
    done = store.get(key)
    if done is not None:
        ago = time.time() - done.finished_at
        cols = st.columns([4, 1]) if rerun_label else [st.container()]
        cols[0].caption(
            f"Computed in {_duration(done.seconds)}, {_age(ago)} ago; shared by "
            "everyone using this app with the same settings."
        )
        if rerun_label and cols[1].button(rerun_label, key=f"{widget}.again"):
            store.forget(key)
            done = None
        else:
            return done.value

    stopped = st.session_state.pop(state_key, None)
    c1, c2 = st.columns([3, 1])
    started = c1.button(
        f"{start_label} ({_estimate_text(estimate_s)})", key=f"{widget}.start", type="primary"
    )
    if caps:
        st.caption(caps)
    if not started:
        if stopped is not None and stopped[0] < 1.0:
            st.info(
                f"Stopped at {stopped[0]:.0%} after {_duration(stopped[2])}"
                f"{': ' + stopped[1] if stopped[1] else ''}. Nothing was kept; start again "
                "when you are ready."
            )
        return None
    stop_slot = c2.empty()
    stop_slot.button("Stop", key=f"{widget}.stop", help="Stops the run at its next progress step.")

    lock = store.key_lock(key)
    if not lock.acquire(blocking=False):
        return _wait_for_other_run(store, key, lock)
    try:
        progress = _Progress(state_key, estimate_s, on_partial)
        t0 = time.monotonic()
        try:
            with _reserved(memory):
                value = work(progress)
        except OverBudget as exc:
            progress.bar.empty()
            stop_slot.empty()
            st.warning(
                f"{exc} Nothing was started: try again when other learners' runs have finished.",
                icon="⚠️",
            )
            return None
        finished = Finished(value, time.monotonic() - t0, time.time())
        store.put(key, finished)
        progress.bar.progress(1.0, text=f"Done in {_duration(finished.seconds)}.")
        stop_slot.empty()  # nothing left to stop
        st.session_state.pop(state_key, None)
        return value
    finally:
        lock.release()


MEMORY_WAIT_S = 60.0


@contextmanager
def _reserved(memory: Callable[[], tuple[str, int]] | None) -> Iterator[None]:
    """Hold the job's memory under the budget; raises OverBudget when it cannot fit."""
    if memory is None:
        yield
        return
    from components.models import make_room
    from core.runtime.models import ModelUnavailable

    what, need = memory()
    b = budget()
    if not b.check(need).fits:
        try:
            make_room(need, what)  # unload models nobody uses
        except ModelUnavailable:
            pass  # other learners' runs may still end: wait for them below
    if b.check(need).fits:
        ticket = b.acquire(what, need)
    else:
        with st.spinner(f"Waiting up to {MEMORY_WAIT_S:.0f} s for memory ({what.lower()})…"):
            ticket = b.acquire(what, need, wait_s=MEMORY_WAIT_S)
    try:
        yield
    finally:
        b.release(ticket)


def _wait_for_other_run(store: JobStore, key: Hashable, lock: threading.Lock) -> Any:
    """Another learner is running the same job: wait for their result rather than run it twice."""
    with st.spinner(
        "Another learner started this same run a moment ago; waiting for its "
        "result instead of running it twice…"
    ):
        checkpoint = st.empty()
        while True:
            got = lock.acquire(timeout=0.5)
            if got:
                lock.release()
                break
            checkpoint.empty()  # a point where a Stop click can interrupt the wait
    done = store.get(key)
    if done is None:
        st.info("That run was stopped before it finished. Press the button to run it yourself.")
        return None
    return done.value


def load_factor(cap: float = 8.0) -> float:
    """How much slower than an idle machine work runs right now (the 1-minute load average per
    core, at least 1, at most `cap`): multiply a job's idle-machine estimate by it."""
    import os

    try:
        load = os.getloadavg()[0] / max(1, os.cpu_count() or 1)
    except OSError:  # not available on this platform
        load = 1.0
    return min(max(1.0, load), cap)
