"""components.jobs: a run starts from its button, reports progress, and its result is shared;
estimates count the load and the queue and correct themselves; a Stop is recorded where it
happened; no job runs inside a fragment; no cached function moves an element made outside it."""

from __future__ import annotations

import ast
import time

import pytest
from callgraph import CallGraph, decorated
from streamlit.testing.v1 import AppTest


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """These tests read estimates: pretend the (shared, busy) test machine is idle."""
    from components import jobs

    monkeypatch.setattr(jobs, "load_factor", lambda cap=8.0: 1.0)


def _script():
    import streamlit as st

    from components.jobs import run_job

    calls = st.session_state.setdefault("calls", [])

    def work(report):
        for i in range(5):
            report(i / 5, f"step {i}", partial=list(range(i + 1)))
        calls.append(1)
        return sum(range(10))

    scale = st.number_input("scale", value=1, key="scale")
    value = run_job(
        ("test", "sum", scale),
        work,
        start_label="Add up",
        estimate_s=0.5,
        caps="At most 5 steps.",
        on_partial=lambda p: st.write(len(p)),
    )
    st.text(f"value={value}")


def test_job_runs_from_its_button_and_is_shared_with_the_next_session():
    from components.jobs import job_store

    at = AppTest.from_function(_script, default_timeout=30).run()
    assert not at.exception
    assert "value=None" in [t.value for t in at.text]
    start = [b for b in at.button if b.label.startswith("Add up")]
    assert start and "about a second" in start[0].label
    assert any("At most 5 steps." in c.value for c in at.caption)
    start[0].click().run()
    assert not at.exception
    assert "value=45" in [t.value for t in at.text]
    assert at.session_state["calls"] == [1]
    assert not [b for b in at.button if b.label == "Stop"]  # nothing left to stop
    assert len(job_store().locks) == 0  # the run's lock went with it

    other = AppTest.from_function(_script, default_timeout=30).run()  # a second learner
    assert "value=45" in [t.value for t in other.text]
    assert not [b for b in other.button if b.label.startswith("Add up")]
    assert other.session_state["calls"] == []  # nothing recomputed
    assert any("shared by everyone" in c.value for c in other.caption)

    other.number_input(key="scale").set_value(2).run()  # new settings: not run yet
    assert "value=None" in [t.value for t in other.text]


def test_run_again_runs_at_once_and_leaves_no_stale_finished_line():
    """'Run again' used to forget the result and show the start button under the old
    'Computed in …, finished … ago' line and the 'Run again' button: two buttons and a
    caption about a result that was gone."""
    at = AppTest.from_function(_script, default_timeout=30).run()
    at.number_input(key="scale").set_value(7).run()
    [b for b in at.button if b.label.startswith("Add up")][0].click().run()
    assert "value=45" in [t.value for t in at.text]
    at.run()  # the next run shows the shared result, its "finished" line and "Run again"
    assert [c for c in at.caption if "finished" in c.value]
    at.session_state["calls"] = []
    at.button(key=[b.key for b in at.button if b.label == "Run again"][0]).click().run()
    assert not at.exception
    assert "value=45" in [t.value for t in at.text]
    assert at.session_state["calls"] == [1]  # computed again, with one press
    assert not [c for c in at.caption if "finished" in c.value and "ago" in c.value]


# --- the store: one LRU, locks that do not pile up -------------------------------------------


def test_job_store_is_the_byte_budget_and_forgets_its_locks():
    """The job store's LRU is components.memo.ByteBudget (not a second copy of it), and a key's
    lock exists only while a run holds or waits for it: before, one lock stayed per key ever
    run, for the life of the server."""
    import threading

    from components.jobs import Finished, JobStore
    from components.memo import ByteBudget

    store = JobStore(budget=10_000, max_entries=3)
    assert isinstance(store.results, ByteBudget)
    for i in range(5):
        with store.locks.holding(("k", i)) as got:
            assert got and store.running() == [("k", i)]
            store.put(("k", i), Finished(i, 1.0, 0.0))
    assert len(store.locks) == 0 and store.running() == []
    assert [k for k in store.results.sizes()] == [("k", 2), ("k", 3), ("k", 4)]  # LRU, 3 kept

    big = Finished(bytes(50_000), 1.0, 0.0)  # larger than the whole budget: kept alone
    store.put("big", big)
    assert store.get("big") is big and len(store.results) == 1

    inside = threading.Event()
    release = threading.Event()

    def hold():
        with store.locks.holding("busy"):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(5)
    with store.locks.holding("busy", blocking=False) as got:
        assert not got  # somebody else is running it
    assert store.running() == ["busy"]
    release.set()
    t.join()
    assert len(store.locks) == 0


# --- estimates -------------------------------------------------------------------------------


def test_estimate_counts_the_load_and_the_jobs_running(monkeypatch):
    from components import jobs

    store = jobs.JobStore(budget=10_000)
    monkeypatch.setattr(jobs, "job_store", lambda: store)
    monkeypatch.setattr(jobs, "load_factor", lambda cap=8.0: 1.0)  # an idle machine
    assert jobs.scaled_estimate_s(("a", "b"), 10.0) == pytest.approx(10.0)
    monkeypatch.setattr(jobs, "load_factor", lambda cap=8.0: 2.5)
    assert jobs.scaled_estimate_s(("a", "b"), 10.0) == pytest.approx(25.0)
    monkeypatch.setattr(jobs, "load_factor", lambda cap=8.0: 1.0)
    with store.locks.holding(("x", "1")), store.locks.holding(("y", "2")):
        assert jobs.others_running(("a", "b")) == 2
        assert jobs.queue_text(2) == "sharing the server with 2 other jobs"
        assert jobs.scaled_estimate_s(("a", "b"), 10.0) == pytest.approx(30.0)
        assert jobs.others_running(("x", "1")) == 1  # a job does not wait for itself


def test_estimate_follows_how_long_this_kind_of_job_really_took(monkeypatch):
    from components import jobs

    store = jobs.JobStore(budget=10_000)
    monkeypatch.setattr(jobs, "job_store", lambda: store)
    monkeypatch.setattr(jobs, "load_factor", lambda cap=8.0: 1.0)  # an idle machine
    store.record_pace(("page", "job", 1), seconds=30.0, expected_s=10.0)
    assert jobs.scaled_estimate_s(("page", "job", 2), 10.0) == pytest.approx(30.0)
    assert jobs.scaled_estimate_s(("page", "other"), 10.0) == pytest.approx(10.0)
    store.record_pace(("page", "job", 1), seconds=1000.0, expected_s=10.0)
    store.record_pace(("page", "job", 1), seconds=1000.0, expected_s=10.0)
    assert store.pace(("page", "job")) == 4.0  # bounded


def test_time_left_comes_from_measured_progress_and_never_reads_zero():
    from components.jobs import estimate_text, eta_text

    # Before a tenth of the work: the estimate minus the time spent.
    assert eta_text(0.05, 10.0, 60.0) == "about 50 s left"
    # The estimate used up with little done: slower than estimated, not "about 0.0 s left".
    text = eta_text(0.03, 40.0, 30.0)
    assert "0.0 s" not in text and "slower than estimated" in text and "40 s so far" in text
    # From a tenth on: the run's own pace. A 6.6-minute run at 25 % after 99 s: 4.95 min left.
    assert eta_text(0.25, 99.0, 30.0) == "about 5 min left"
    assert eta_text(0.5, 10.0, 600.0) == "about 10 s left"
    assert eta_text(0.995, 100.0, 60.0) == "about a second left"
    assert eta_text(1.0, 100.0, 60.0) == "finishing"
    assert estimate_text(0.4) == "about a second" and estimate_text(125) == "about 2 min"


# --- Stop --------------------------------------------------------------------------------------


def _stopped_script():
    import time

    import streamlit as st
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from components.jobs import run_job

    def work(report):
        report(0.37, "Step 37 of 100")
        time.sleep(1.2)
        raise StopException()  # what Streamlit raises at the next st call after a Stop

    st.text(f"value={run_job(('test', 'stopped'), work, start_label='Go', estimate_s=5)}")


def test_a_stop_is_told_with_its_real_fraction_and_time():
    """Page 22 said "Stopped at 0% after 0.0 s" after a minute: the time was the one of the last
    report, and nothing caught the stop itself."""
    from components.jobs import job_store

    at = AppTest.from_function(_stopped_script, default_timeout=30).run()
    [b for b in at.button if b.label.startswith("Go")][0].click().run()
    assert len(job_store().locks) == 0  # the stopped run left no lock behind
    at.run()  # the learner's next click
    told = [i.value for i in at.info if i.value.startswith("Stopped at")]
    assert told, [i.value for i in at.info]
    assert told[0].startswith("Stopped at 37% after 1.") and "Step 37 of 100" in told[0]
    at.run()
    assert not [i for i in at.info if i.value.startswith("Stopped at")]  # said once


# --- where jobs may run ------------------------------------------------------------------------


def _fragments(graph: CallGraph):
    """Every function run as an st.fragment: decorated with it, or wrapped by st.fragment(f)."""
    for mod in graph.modules.values():
        defs = {n.name: n for n in ast.walk(mod.tree) if isinstance(n, ast.FunctionDef)}
        for node in ast.walk(mod.tree):
            if decorated(node, "fragment"):
                yield mod, node
            elif (
                isinstance(node, ast.Call)
                and ast.unparse(node.func).endswith("fragment")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in defs
            ):
                yield mod, defs[node.args[0].id]


def test_no_job_runs_inside_a_fragment():
    """A click inside an st.fragment never interrupts a running script run, so a Stop there only
    acts after the work is done. Follows every fragment's calls through pages, components and
    core (pages 18 and 20 and the fast-mode section started jobs through component wrappers,
    which a scan of pages/ alone did not see)."""
    graph = CallGraph()
    found = list(_fragments(graph))
    assert len(found) >= 10  # the graph sees the app's fragments
    for mod, frag in found:
        reached = graph.reach(mod, frag)
        path = reached.get(("components.jobs", "run_job"))
        assert path is None, f"{mod.name}.{frag.name} runs a job: " + " -> ".join(
            ".".join(r) for r in path
        )


def _cached_functions(graph: CallGraph):
    for mod in graph.modules.values():
        for node in ast.walk(mod.tree):
            if decorated(node, "cache_data") or decorated(node, "cache_resource"):
                yield mod, node


def test_no_cached_function_touches_anything_made_outside_it():
    """Streamlit replays the elements a cached function drew on every cache hit; one that moves
    a progress bar made outside it (a job's report) raises CacheReplayClosureError on the
    second call. So no st.cache_* function is handed a callback (it calls none of its
    parameters) and none draws."""
    graph = CallGraph()
    cached = list(_cached_functions(graph))
    assert len(cached) > 40
    for mod, f in cached:
        params = {a.arg for a in f.args.args + f.args.kwonlyargs}
        for node in ast.walk(f):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                assert name not in params, f"{mod.name}.{f.name} calls its parameter {name}"
                assert not name.startswith("st.") or name.startswith(
                    ("st.cache_", "st.session_state")
                ), f"{mod.name}.{f.name} draws with {name}"
        assert not any("report" in p or "progress" in p for p in params), (mod.name, f.name)


def test_pages_run_no_progress_loop_of_their_own():
    """Every long run goes through run_job (progress, Stop, estimate, shared result): pages 03
    and 19 drew their own st.progress loops, with no Stop and no estimate."""
    graph = CallGraph()
    for mod in graph.modules.values():
        if mod.name == "components.jobs":
            continue
        loops = [n for n in ast.walk(mod.tree) if isinstance(n, (ast.For, ast.While))]
        moved = [
            ast.unparse(c)
            for loop in loops
            for c in ast.walk(loop)
            if isinstance(c, ast.Call)
            and isinstance(c.func, ast.Attribute)
            and c.func.attr == "progress"
        ]
        # a bar moved in a loop is a job of its own (page 03's and 19's were); a static bar,
        # e.g. page 17's "labelled 3 of 24", is not
        assert not moved, (mod.name, moved)


def test_callgraph_follows_calls_into_components():
    """The graph itself: page 16's fine-tune section reaches run_job through its component."""
    graph = CallGraph()
    page = graph.modules["pages.16_fine_tuning"]
    assert ("components.jobs", "run_job") in graph.reach(page, page.tree)
    assert time.time() > 0


def test_estimate_functions_share_one_name_pattern():
    """Nine estimate functions had three naming styles (estimate_seconds, sweep_estimate,
    timing_estimate_s): every one is now `<what>_estimate_s`, and only components.jobs turns an
    estimate into words."""
    graph = CallGraph()
    names = [
        (mod.name, f.name)
        for mod in graph.modules.values()
        for f in ast.walk(mod.tree)
        if isinstance(f, ast.FunctionDef) and "estimat" in f.name
    ]
    odd = [
        n
        for n in names
        if not n[1].endswith("_estimate_s") and n[1] not in ("estimate_text", "estimated_jaccard")
    ]
    assert len(names) >= 15 and not odd, odd


def _play_script():

    from components import playground

    playground.playground("pg")


def test_header_stop_ends_play(monkeypatch):
    """Streamlit's header Stop during Play raised StopException in the redraw and the timer
    started the next one: Play went on. Now the stop ends Play, as the page's Pause does."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from components import playground

    real = playground._draw

    def stopped_draw(*args, **kwargs):
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        real(*args, **kwargs)
        # The header's Stop: every later st call of this run raises StopException, session
        # state included (a plain write in the except block was lost that way).
        get_script_run_ctx().script_requests.request_stop()
        raise StopException()

    at = AppTest.from_function(_play_script, default_timeout=60).run()
    at.session_state["pg.playing"] = True  # as the Play button's callback sets it
    monkeypatch.setattr(playground, "_draw", stopped_draw)
    at.run()
    assert at.session_state["pg.playing"] is False


def test_a_shared_step_inside_a_job_is_not_counted_as_another_job(monkeypatch):
    from components import jobs

    store = jobs.JobStore(budget=10_000)
    monkeypatch.setattr(jobs, "job_store", lambda: store)
    seen = []
    with store.locks.holding(("page", "job")):
        value = jobs.shared_step(
            ("page", "step"), lambda: seen.append(jobs.others_running(("page", "job"))) or 7
        )
    assert value == 7 and seen == [0]
    assert jobs.shared_step(("page", "step"), lambda: 8) == 7  # computed once, then shared


def test_the_finished_caption_keeps_the_run_time_apart_from_its_age():
    # "Computed in 3 min, 5 s ago" read as one age (3 min 5 s); the run took 3 min and
    # ended 5 s ago.
    from components.jobs import done_text

    text = done_text(185.0, 5.0)
    assert text.startswith("Computed in 3 min, finished 5 s ago;")
    assert done_text(3.6, 7200.0).startswith("Computed in 3.6 s, finished 2.0 h ago;")
    assert done_text(104.2, 0.3).startswith("Computed in 2 min, finished just now;")
