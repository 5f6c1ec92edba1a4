"""Long work started from a button: progress, a Stop, an honest estimate, one result for all.

Every page that trains, sweeps or measures something for more than a second or two goes through
`run_job` (no page runs its own `st.progress` loop). The work runs in the learner's own script
run (so Streamlit's rerun on any click, the Stop button included, interrupts it at its next
progress report, and every `with` block in core unwinds), while the finished result goes into a
process-wide store shared by every session: a second learner asking for the same job with the
same settings gets it at once, and one who asks while it is still running waits for that run
instead of starting another.

Where results live (the caching rule, README "Caching rule"): a job's result goes in this
module's job store, a `components.memo.ByteBudget` of its own (`LLM_EXPLORER_JOBS_MB`, default
96 MB, at most 48 results, least recently used dropped first; the newest is always kept). Work
called inside a job never goes through `st.cache_data`/`st.cache_resource` with the job's
`report`: a cached function that moves an element created outside it (the progress bar) raises
`CacheReplayClosureError` on its next cache hit. Share a sub-result between jobs with
`shared_step` instead.

Stopping. The page's Stop button and Streamlit's own header Stop both end the run at its next
progress report (Streamlit raises `StopException` there; with a click the next run has already
started). `run_job` catches it, writes "Stopped at 37% after 12 s" where the bar was, and the
next run of the page says the same above the start button.

Estimates. Callers pass `estimate_s`, the seconds the work takes on an idle machine (named
`<what>_estimate_s` where a function computes it); `run_job` scales it by how busy the server
is (`busy_factor`: the load average per core, and the other jobs running or queued for the
heavy-work slot), by how far earlier runs of the same job landed from their own estimates, and
shows it through `estimate_text`, the one place an estimate becomes words. Once a run has done
about a tenth of its work, the time left comes from its own measured pace instead.

Never call `run_job` inside an `st.fragment`: a click inside a fragment does not interrupt a
running script in Streamlit 1.67, so Stop would only act after the whole job (a test follows the
calls of every fragment into components and core to check it).

Core functions take a `report(fraction, text, partial=None)` callback (core never imports
streamlit): `fraction` in [0, 1], a short status text, and optionally a partial result (a loss
curve so far) that the page draws live through `on_partial`.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function

from components.memo import ByteBudget, KeyedLocks
from core.runtime.budget import OverBudget, budget
from core.runtime.models import HEAVY_WORK, ModelUnavailable

T = TypeVar("T")
Report = Callable[..., None]  # report(fraction: float, text: str = "", partial: Any = None)

PARTIAL_REDRAW_S = 0.25  # at most four live redraws a second: drawing costs more than a step
BAR_REDRAW_S = 0.1  # the bar moves at most ten times a second, however often work reports
MEASURED_FROM = 0.1  # from this fraction on, the time left comes from the run's own pace
JOBS_ENV = "LLM_EXPLORER_JOBS_MB"
DEFAULT_JOBS_MB = 96
MAX_RESULTS = 48


@dataclass(frozen=True)
class Finished:
    value: Any
    seconds: float  # wall time of the run that produced it
    finished_at: float  # time.time()


class JobStore:
    """Finished results (a `ByteBudget`: the app's one LRU, with its per-key locks, which
    exist only while a run holds or waits for them) and, per kind of job, how long its last
    runs took against their estimates."""

    def __init__(self, budget: int, max_entries: int = MAX_RESULTS) -> None:
        self.results = ByteBudget(budget, max_entries=max_entries, keep_newest=True)
        self.locks = self.results.locks  # one per job running: what `running` counts
        self.step_locks = KeyedLocks()  # shared steps run inside jobs: not jobs of their own
        self._ratios: dict[Hashable, deque[float]] = {}  # one short deque per kind of job
        self._ratio_lock = threading.Lock()

    def get(self, key: Hashable) -> Finished | None:
        found, value = self.results.get(key)
        return value if found else None

    def put(self, key: Hashable, finished: Finished) -> None:
        self.results.put(key, finished)

    def forget(self, key: Hashable) -> None:
        self.results.pop(key)

    def running(self) -> list[Hashable]:
        """Keys of the jobs running right now, in any session."""
        return self.locks.held()

    def record_pace(self, key: Hashable, seconds: float, expected_s: float) -> None:
        """How long a run took against the estimate it was shown (already load-scaled)."""
        if expected_s > 0 and seconds > 0:
            with self._ratio_lock:
                self._ratios.setdefault(_kind(key), deque(maxlen=5)).append(seconds / expected_s)

    def pace(self, key: Hashable) -> float:
        """The median of this kind of job's last runs' actual/estimated time, within [0.5, 4]
        (1 before any run): estimates correct themselves from what this server measured."""
        with self._ratio_lock:
            ratios = list(self._ratios.get(_kind(key), ()))
        return min(max(statistics.median(ratios), 0.5), 4.0) if ratios else 1.0


def _kind(key: Hashable) -> Hashable:
    """A job's kind: the first two parts of its key (page and job name)."""
    return key[:2] if isinstance(key, tuple) else key


def _jobs_budget() -> int:
    try:
        mb = float(os.environ.get(JOBS_ENV, DEFAULT_JOBS_MB))
    except ValueError:
        mb = DEFAULT_JOBS_MB
    return int(max(mb, 1.0) * 1e6)


@st.cache_resource(show_spinner=False)
def job_store() -> JobStore:
    return JobStore(_jobs_budget())


def finished_result(key: Hashable) -> Finished | None:
    """The shared result of a job that has already run with these settings, if any."""
    return job_store().get(key)


def shared_step(key: Hashable, compute: Callable[[], T]) -> T:
    """A sub-result several jobs share (the original model's answers before any fine-tune):
    computed once, inside whichever job needs it first, and kept in the job store like a job's
    result. Unlike an `st.cache_*` function it may report progress: nothing is replayed."""
    store = job_store()
    done = store.get(key)
    if done is not None:
        return done.value
    with store.step_locks.holding(key):
        done = store.get(key)
        if done is not None:
            return done.value
        t0 = time.monotonic()
        value = compute()
        store.put(key, Finished(value, time.monotonic() - t0, time.time()))
        return value


# --- estimates and durations as words: the one place -----------------------------------------


def load_factor(cap: float = 8.0) -> float:
    """How much slower than an idle machine work runs right now (the 1-minute load average per
    core, at least 1, at most `cap`)."""
    try:
        load = os.getloadavg()[0] / max(1, os.cpu_count() or 1)
    except OSError:  # not available on this platform
        load = 1.0
    return min(max(1.0, load), cap)


def others_running(key: Hashable | None = None) -> int:
    """Other jobs running now in this process (any session), or queued for the heavy-work
    slot, whichever is more."""
    jobs = [k for k in job_store().running() if k != key]
    return max(len(jobs), HEAVY_WORK.waiting())


def busy_factor(key: Hashable | None = None) -> float:
    """How many times longer than on an idle machine a job takes now: the load average per
    core, or one share of the machine per other job running (they take turns on the
    heavy-work slot), whichever is larger."""
    return max(load_factor(), 1.0 + others_running(key))


def scaled_estimate_s(key: Hashable, estimate_s: float) -> float:
    """The idle-machine estimate, scaled by the load, the queue, and this job's measured pace."""
    return estimate_s * busy_factor(key) * job_store().pace(key)


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def duration_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else age_text(seconds)


def done_text(seconds: float, ago: float) -> str:
    """The caption over a finished result: how long the run took and how long ago it ended,
    kept apart ("Computed in 3 min, 5 s ago" read as one age)."""
    when = "just now" if ago < 1 else f"{age_text(ago)} ago"  # not "finished 0 s ago"
    return (
        f"Computed in {duration_text(seconds)}, finished {when}; shared by "
        "everyone using this app with the same settings."
    )


def estimate_text(estimate_s: float) -> str:
    """An estimate in words: "about a second", "about 12 s", "about 3 min"."""
    if estimate_s < 1.5:
        return "about a second"
    return f"about {duration_text(estimate_s)}"


def queue_text(others: int) -> str:
    if others <= 0:
        return ""
    return f"sharing the server with {others} other job{'s' if others > 1 else ''}"


def eta_text(fraction: float, elapsed: float, expected_s: float) -> str:
    """The time left, in words. Before a tenth of the work is done it is the estimate minus the
    time spent (and, once that is used up, says the run is slower than estimated rather than
    "0 s left"); from then on it is the run's own pace: elapsed x (1 - f) / f."""
    if fraction >= 0.999:
        return "finishing"
    if fraction >= MEASURED_FROM:
        left = elapsed * (1 - fraction) / fraction
    else:
        left = expected_s - elapsed
        if left < max(1.0, 0.1 * expected_s):
            return (
                f"slower than estimated ({estimate_text(expected_s)}): {age_text(elapsed)} so far"
            )
    if left < 1.5:
        return "about a second left"
    return f"about {duration_text(left)} left"


def stopped_text(fraction: float, elapsed: float, status: str = "") -> str:
    return f"Stopped at {fraction:.0%} after {duration_text(elapsed)}" + (
        f" ({status})" if status else ""
    )


# --- the run ---------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """What this session knows of its running job, kept in its session state: the next run of
    the page reads it to say where a stopped run was."""

    fraction: float
    text: str
    started: float  # time.time()
    stopped_after: float | None = None  # seconds, when the stop was seen by the run itself

    def elapsed(self) -> float:
        if self.stopped_after is not None:
            return self.stopped_after
        return time.time() - self.started


class _Progress:
    """The callback handed to the work: moves the bar, draws partial results, records state."""

    def __init__(
        self,
        key: Hashable,
        state_key: str,
        expected_s: float,
        on_partial: Callable[[Any], None] | None,
    ) -> None:
        self.key = key
        self.state_key = state_key
        self.expected_s = expected_s
        self.on_partial = on_partial
        self.started = time.monotonic()
        self.record = RunRecord(0.0, "", time.time())
        st.session_state[state_key] = self.record
        self.bar = st.progress(0.0, text=f"Starting… · {estimate_text(expected_s)} in all")
        self.live = st.empty() if on_partial else None
        self._last_draw = 0.0
        self._last_bar = 0.0

    def __call__(self, fraction: float, text: str = "", partial: Any = None) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        elapsed = time.monotonic() - self.started
        self.record.fraction, self.record.text = fraction, text
        if in_cached_function.get():
            return  # an st.cache_* body must not touch the bar: its replay would raise
        now = time.monotonic()
        if now - self._last_bar >= BAR_REDRAW_S or fraction >= 1.0:
            self._last_bar = now
            parts = [text, eta_text(fraction, elapsed, self.expected_s)]
            parts.append(queue_text(others_running(self.key)))
            self.bar.progress(fraction, text=" · ".join(p for p in parts if p))
        if (
            partial is not None
            and self.live is not None
            and (now - self._last_draw >= PARTIAL_REDRAW_S or fraction >= 1.0)
        ):
            self._last_draw = now
            with self.live.container():
                self.on_partial(partial)

    def stopped(self, stop_slot: Any) -> None:
        """The run was stopped (Stop, the header's Stop, any click): say so where the bar was.
        Streamlit refuses every further element in this run, so the message goes out from a
        helper thread carrying the run's context; when a new run has already started (a click)
        Streamlit drops it, and that new run shows the message instead."""
        self.record.stopped_after = time.monotonic() - self.started  # the session keeps it
        message = stopped_text(self.record.fraction, self.record.stopped_after, self.record.text)

        def draw() -> None:
            self.bar.progress(self.record.fraction, text=f"{message}. Nothing was kept.")
            stop_slot.empty()

        after_stop(draw)


def stopped_by_header() -> bool:
    """Inside `except StopException`: True when the run was stopped with no new run taking its
    place (Streamlit's header Stop), False when a click started a new run (fast reruns stop the
    old run the same way). Reads Streamlit's session table; True when it cannot tell."""
    try:
        from streamlit.runtime import Runtime

        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is None or not Runtime.exists():
            return True
        info = Runtime.instance()._session_mgr.get_session_info(ctx.session_id)
        runner = getattr(info.session, "_scriptrunner", None) if info else None
        return runner is not None and getattr(runner, "_requests", None) is ctx.script_requests
    except Exception:  # noqa: BLE001 - private internals moved: assume the header's Stop
        return True


def after_stop(fn: Callable[[], None]) -> None:
    """Run `fn` (a last message, a session-state write) for a stopped run. After a Stop,
    Streamlit raises StopException again at every st call of the stopped script thread, session
    state included, so `fn` runs in a helper thread carrying the run's context, which Streamlit
    lets through; waits for it (at most 2 s). Harmless when nothing was stopped."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        fn()
        return
    helper = threading.Thread(target=_quietly, args=(fn,), daemon=True)
    add_script_run_ctx(helper, ctx)
    helper.start()
    helper.join(timeout=2.0)


def _quietly(draw: Callable[[], None]) -> None:
    try:
        draw()
    except BaseException:  # noqa: BLE001 - the session may be gone; the message is a courtesy
        pass


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
    caption; `estimate_s` is the caller's idle-machine guess: the button shows it scaled by the
    server's load and queue, and the run refines it from its measured progress.
    """
    store = job_store()
    widget = f"job.{abs(hash(key)) % 10**10}"
    state_key = f"{widget}.progress"
    done = store.get(key)
    again = False
    if done is not None:
        ago = time.time() - done.finished_at
        row = st.empty()  # emptied when "Run again" starts a new run: no stale "finished" line
        with row.container():
            cols = st.columns([4, 1]) if rerun_label else [st.container()]
            cols[0].caption(done_text(done.seconds, ago))
            again = bool(rerun_label) and cols[1].button(rerun_label, key=f"{widget}.again")
        if not again:
            st.session_state.pop(state_key, None)
            return done.value
        store.forget(key)
        row.empty()

    stopped: RunRecord | None = st.session_state.pop(state_key, None)
    loaded = estimate_s * busy_factor(key)
    expected = loaded * store.pace(key)
    c1, c2 = st.columns([3, 1])
    started = (
        c1.button(
            f"{start_label} ({estimate_text(expected)})", key=f"{widget}.start", type="primary"
        )
        or again  # "Run again" runs at once, without a second press
    )
    busy = others_running(key)
    if caps or busy:
        note = (
            f"The server is busy ({queue_text(busy)}): the estimate counts them. " if busy else ""
        )
        st.caption(note + caps)
    if not started:
        if stopped is not None and stopped.fraction < 1.0:
            st.info(
                f"{stopped_text(stopped.fraction, stopped.elapsed(), stopped.text)}. Nothing "
                "was kept; start again when you are ready."
            )
        return None
    stop_slot = c2.empty()
    stop_slot.button("Stop", key=f"{widget}.stop", help="Stops the run at its next progress step.")

    with store.locks.holding(key, blocking=False) as mine:
        if not mine:
            return _wait_for_other_run(store, key)
        progress = _Progress(key, state_key, expected, on_partial)
        t0 = time.monotonic()
        try:
            with _reserved(memory):
                value = work(progress)
        except (OverBudget, ModelUnavailable) as exc:  # no room, or no model to run it on
            progress.bar.empty()
            stop_slot.empty()
            done = "Nothing was started" if isinstance(exc, OverBudget) else "Nothing was kept"
            st.warning(
                f"{exc} {done}: try again when other learners' runs have finished.", icon="⚠️"
            )
            return None
        except ScriptControlException:  # a Stop (page or header) or a click during the run
            progress.stopped(stop_slot)
            raise
        finished = Finished(value, time.monotonic() - t0, time.time())
        store.put(key, finished)
        store.record_pace(key, finished.seconds, loaded)
        progress.bar.progress(1.0, text=f"Done in {duration_text(finished.seconds)}.")
        stop_slot.empty()  # nothing left to stop
        st.session_state.pop(state_key, None)
        return value


MEMORY_WAIT_S = 60.0


@contextmanager
def _reserved(memory: Callable[[], tuple[str, int]] | None) -> Iterator[None]:
    """Hold the job's memory under the budget; raises OverBudget when it cannot fit."""
    if memory is None:
        yield
        return
    from components.models import make_room

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


def _wait_for_other_run(store: JobStore, key: Hashable) -> Any:
    """Another learner is running the same job: wait for their result rather than run it twice."""
    with st.spinner(
        "Another learner started this same run a moment ago; waiting for its "
        "result instead of running it twice…"
    ):
        checkpoint = st.empty()
        while True:
            with store.locks.holding(key, timeout=0.5) as free:
                if free:
                    break
            checkpoint.empty()  # a point where a Stop click can interrupt the wait
    done = store.get(key)
    if done is None:
        st.info("That run was stopped before it finished. Press the button to run it yourself.")
        return None
    return done.value
