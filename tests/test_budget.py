"""The memory budget (issue 23 item 2): its limit, what it counts, and how it says no."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch

from core.runtime import budget as b

MB = b.MB


def test_the_setting_wins_then_the_cgroup_then_the_default(tmp_path):
    (tmp_path / "memory.max").write_text("2900000000\n")
    assert b.memory_limit({b.LIMIT_ENV: "1500"}, tmp_path) == b.Limit(
        1500, f"the setting {b.LIMIT_ENV}"
    )
    assert b.memory_limit({}, tmp_path).mb == 2900
    assert "v2" in b.memory_limit({}, tmp_path).source
    (tmp_path / "memory.max").write_text("max\n")  # v2 without a limit, v1 with one
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("1200000000")
    assert b.memory_limit({}, tmp_path) == b.Limit(1200, "cgroup v1 memory.limit_in_bytes")
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")  # none
    limit = b.memory_limit({b.LIMIT_ENV: "not a number"}, tmp_path)
    assert limit.mb == min(b.DEFAULT_LIMIT_MB, b.machine_bytes() // MB)


def test_a_child_process_counts():
    before = b.used_bytes()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; x = bytearray(300_000_000); x[::4096] = b'x' * len(x[::4096]); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while b.used_bytes() - before < 250 * MB and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b.used_bytes() - before >= 250 * MB
    finally:
        child.communicate(b"")


def test_tensor_bytes_counts_tied_weights_once(tiny_gpt2):
    model = tiny_gpt2.model
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    unique |= {t.data_ptr(): t.numel() * t.element_size() for t in model.buffers()}
    assert b.tensor_bytes(model) == sum(unique.values())


def test_float32_size_is_read_from_the_safetensors_header(tmp_path):
    from safetensors.torch import save_file

    save_file(
        {"a": torch.zeros(3, 5, dtype=torch.bfloat16), "b": torch.zeros(7)},
        str(tmp_path / "m.safetensors"),
    )
    assert b.float32_bytes_of_safetensors([tmp_path / "m.safetensors"]) == (15 + 7) * 4
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 3)
    assert b.float32_bytes_of_safetensors([tmp_path / "bad.safetensors"]) is None


def _budget(limit_mb: int, used_mb: int) -> b.Budget:
    return b.Budget(b.Limit(limit_mb, "test"), measure=lambda: used_mb * MB)


def test_a_request_that_does_not_fit_is_refused_with_a_sentence():
    budget = _budget(2700, 1900)  # 2700 - 250 safety - 1900 = 550 MB free
    assert budget.check(500 * MB).fits and not budget.check(600 * MB).fits
    with pytest.raises(b.OverBudget) as refused:
        budget.acquire("Fine-tuning a copy of the model", 600 * MB)
    assert str(refused.value) == (
        "Fine-tuning a copy of the model needs about 600 MB of memory and this server has "
        "550 MB free of its 2,700 MB budget (set by test)."
    )


def test_reservations_add_up_and_a_waiter_gets_its_turn_when_one_ends():
    budget = _budget(2700, 1900)
    first = budget.acquire("first", 400 * MB)
    with pytest.raises(b.OverBudget):  # 150 MB left, nobody will wait 0 s
        budget.acquire("second", 300 * MB)
    got: list[int] = []
    waiter = threading.Thread(
        target=lambda: got.append(budget.acquire("second", 300 * MB, wait_s=10))
    )
    waiter.start()
    time.sleep(0.3)
    assert not got  # still waiting
    budget.release(first)
    waiter.join(5)
    assert got and budget.reservations() == [("second", 300 * MB)]


def test_a_waiter_is_refused_when_nothing_it_waits_for_ends():
    budget = _budget(2700, 1900)
    t0 = time.monotonic()
    with pytest.raises(b.OverBudget):
        budget.acquire("big", 2000 * MB, wait_s=30)
    assert time.monotonic() - t0 < 5  # no reservation to wait for: refused at once


def test_a_job_over_the_budget_says_why_and_runs_nothing(monkeypatch):
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from components.jobs import run_job

        ran = []
        run_job(
            ("budget-test",),
            lambda report: ran.append(1),
            start_label="Go",
            estimate_s=1,
            memory=lambda: ("A copy of the model", 10**12),
        )
        st.write(f"ran={len(ran)}")

    monkeypatch.setattr(b, "_BUDGET", _budget(2700, 1000))
    at = AppTest.from_function(script).run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    (warning,) = at.warning
    assert "A copy of the model needs about 1,000,000 MB" in warning.value
    assert "Nothing was started" in warning.value
    assert at.markdown[-1].value == "ran=0"


def test_unload_frees_a_model_that_something_still_holds(tiny_hub, monkeypatch):
    from components import models as cm

    lm = cm.load_model("tiny-test/llama")
    held = lm  # as a page's globals hold their last run's model
    assert "tiny-test/llama" in cm._RESIDENT
    assert b.tensor_bytes(held.model) > 0
    cm.unload("tiny-test/llama")
    assert "tiny-test/llama" not in cm._RESIDENT
    assert b.tensor_bytes(held.model) == 0
