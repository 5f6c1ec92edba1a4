"""components.jobs: a run starts from its button, reports progress, and its result is shared."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


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

    other = AppTest.from_function(_script, default_timeout=30).run()  # a second learner
    assert "value=45" in [t.value for t in other.text]
    assert not [b for b in other.button if b.label.startswith("Add up")]
    assert other.session_state["calls"] == []  # nothing recomputed
    assert any("shared by everyone" in c.value for c in other.caption)

    other.number_input(key="scale").set_value(2).run()  # new settings: not run yet
    assert "value=None" in [t.value for t in other.text]
