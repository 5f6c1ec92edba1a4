"""Faults a real install meets, each reproduced, then the next start checked.

Memory: the trace cache is bounded in bytes. Cache folder: killed conversions, read-only
folders, a file in the way, damaged weights. Model field: hub ids only. Page 20's Stop, page
02's Play and the heavy-work queue: nobody holds the machine.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_models import copying_conversion

from core import context_window
from core.runtime import models

ROOT = Path(__file__).resolve().parent.parent
REAL_MKDIR, REAL_OPEN = os.mkdir, os.open


# --------------------------------------------------------------------------- helpers --


@pytest.fixture
def cache_copy(tmp_path, monkeypatch, converted_cache):
    """A private, complete cache (a copy of the session's conversion) as LLM_EXPLORER_CACHE,
    and a private fallback folder; conversions become fast copies, recorded in `.calls`."""
    root = tmp_path / "cache"
    shutil.copytree(converted_cache, root)
    monkeypatch.setenv(models.CACHE_ENV, str(root))
    monkeypatch.setattr(models, "fallback_cache_root", lambda: tmp_path / "fallback")
    calls: list[Path] = []
    monkeypatch.setattr(models, "convert_gguf", copying_conversion(converted_cache, calls))
    return root, calls


def _probe_logits(lm) -> torch.Tensor:
    ids = torch.tensor([lm.tokenizer("The capital of France is")["input_ids"]])
    with torch.inference_mode():
        return lm.model(ids).logits


@pytest.fixture(scope="module")
def pristine_logits(converted_cache):
    model, tokenizer = models._from_folder(str(models.converted_dir(converted_cache)))
    return _probe_logits(models.LoadedModel("x", model, tokenizer, "test"))


def _read_only(monkeypatch, *roots: Path) -> None:
    """Make creating folders and files under `roots` fail as on a read-only file system
    (the tests run as root, for whom chmod does not stop writes)."""
    roots = tuple(str(r) for r in roots)
    real_mkdir, real_open = os.mkdir, os.open

    def blocked(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(roots)

    def mkdir(path, *args, **kwargs):
        if blocked(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if blocked(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


# ------------------------------------------------------ 1. memory: a byte budget --


def test_nbytes_counts_arrays_tensors_frames_and_dataclasses():
    from components.memo import nbytes

    @dataclass(frozen=True)
    class Result:
        a: np.ndarray
        t: torch.Tensor
        df: pd.DataFrame
        parts: tuple

    a = np.zeros((100, 1000), np.float32)  # 400 kB
    t = torch.zeros(50, 1000, dtype=torch.float16)  # 100 kB
    df = pd.DataFrame({"x": np.zeros(10_000)})  # 80 kB
    r = Result(a, t, df, (a, np.zeros(1000, np.int8)))  # `a` again: counted once
    size = nbytes(r)
    assert 581_000 <= size <= 590_000, size


def test_budget_evicts_least_recently_used_first():
    from components.memo import ByteBudget

    store = ByteBudget(budget=3_500)
    for k in "abc":
        store.put(k, np.zeros(1000, np.uint8))
    store.get("a")  # a is now the most recent
    store.put("d", np.zeros(1000, np.uint8))
    assert set(store.sizes()) == {"a", "c", "d"} and store.total <= store.budget
    assert store.put("huge", np.zeros(10_000, np.uint8)) > store.budget
    assert "huge" not in store.sizes()  # too large alone: returned, never stored


def test_room_is_made_before_a_new_value_is_computed():
    """A full cache frees the least recently used entries before the next value of the same
    function is computed, so the old and the new never sit in memory together."""
    from components.memo import ByteBudget, byte_cached

    store = ByteBudget(budget=3_500)
    seen_while_computing = []

    @byte_cached(store=store)
    def make(i: int) -> np.ndarray:
        seen_while_computing.append(store.total)
        return np.zeros(1000, np.uint8)

    for i in range(6):
        make(i)
    entry = store.sizes()[next(iter(store.sizes()))]
    assert seen_while_computing[0] == 0 and max(seen_while_computing) <= store.budget - entry
    assert len(store) == 3 and store.total <= store.budget
    assert make(5) is make(5)  # the latest is cached


@pytest.fixture(scope="module")
def tiny_gpt2_id(tmp_path_factory):
    """A randomly initialised 2-layer GPT-2 saved to a folder (loaded as the operator allows)."""
    from reference_tokenizers import hf_gpt2
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2-memo")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=256)).save_pretrained(
        folder
    )
    hf_gpt2().tok.save_pretrained(folder)
    return str(folder)


def test_thirty_long_prompts_keep_the_trace_cache_under_its_byte_budget(tiny_gpt2_id, monkeypatch):
    """Thirty distinct prompts longer than the trace cap go through the app's trace cache;
    before, 24 traces stayed whatever their size (1.3 GB for SmolLM2 at 256 tokens). A tiny
    GPT-2 keeps the test cheap: its 128-token trace is about 0.4 MB, the budget holds four."""
    from components import memo
    from components import models as cm

    monkeypatch.setenv(models.ALLOW_LOCAL_ENV, "1")
    cap = 128
    sizes = []
    monkeypatch.setattr(memo.STORE, "budget", 1_700_000)
    cm._trace.clear()
    try:
        for i in range(30):
            text = f"Prompt {i}: " + " ".join(f"word{i * 97 + j}" for j in range(150))
            trace = cm._trace(tiny_gpt2_id, text, cap, True)  # with attention: the largest
            assert trace.length == cap and trace.truncated_from > cap
            assert trace.attentions.dtype == np.float16 and trace.top_ids.dtype == np.int32
            sizes.append(memo.nbytes(trace))
            assert memo.STORE.total <= memo.STORE.budget
        assert cm._trace(tiny_gpt2_id, text, cap, True) is trace  # the latest is still cached
        kept = [k for k in memo.STORE.sizes() if k[0] == "components.models._trace"]
        assert 0 < len(kept) < 30 and len(kept) * min(sizes) <= memo.STORE.budget
        assert sum(sizes) > 5 * memo.STORE.budget  # an entry count would have kept them all
    finally:
        cm._trace.clear()


def test_two_sessions_asking_the_same_value_compute_it_once():
    from components.memo import ByteBudget, byte_cached

    calls = []
    store = ByteBudget(10_000_000)

    @byte_cached(store=store)
    def slow(x: int) -> np.ndarray:
        calls.append(x)
        time.sleep(0.2)
        return np.arange(x)

    results = []
    threads = [threading.Thread(target=lambda: results.append(slow(5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [5] and all(r is results[0] for r in results)


# ----------------------------------------- 2. a conversion killed half-way --


def test_a_killed_conversion_is_cleaned_on_the_next_start_and_a_live_one_is_not(cache_copy):
    root, calls = cache_copy
    code = (
        "import sys, time; from pathlib import Path; from core.runtime import models; "
        "tmp = models.start_conversion_folder(Path(sys.argv[1])); "
        "(tmp / 'model.safetensors').write_bytes(bytes(1 << 20)); "
        "print(tmp, flush=True); time.sleep(60)"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    live = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        killed_dir = Path(killed.stdout.readline().strip())
        live_dir = Path(live.stdout.readline().strip())
        os.kill(killed.pid, signal.SIGKILL)  # as when the server is killed mid-conversion
        killed.wait()
        legacy = root / ".convert-legacy"  # left by a version without pid files, long ago
        legacy.mkdir()
        (legacy / "model.safetensors").write_bytes(bytes(1000))
        os.utime(legacy, (time.time() - 7200, time.time() - 7200))

        messages: list[str] = []
        lm = models.load_embedded(messages.append)  # the next start
        assert not killed_dir.exists() and not legacy.exists()
        assert live_dir.exists(), "a conversion another process is still writing stays"
        assert not calls and not messages, "the valid cache loads as usual"
        assert torch.isfinite(_probe_logits(lm)).all()
    finally:
        live.kill()
        live.wait()
    models.clean_stale_conversions(root)
    assert not live_dir.exists()


# ------------------------------------- 3. read-only cache, a file in the way --


def test_read_only_cache_with_a_valid_conversion_loads_as_usual(cache_copy, monkeypatch):
    root, calls = cache_copy
    _read_only(monkeypatch, root)
    lm = models.load_embedded()
    assert not calls and not lm.note


def test_read_only_empty_cache_falls_back_to_a_temporary_folder(
    cache_copy, monkeypatch, tmp_path, pristine_logits
):
    root, calls = cache_copy
    shutil.rmtree(root)
    root.mkdir()
    _read_only(monkeypatch, root)
    messages: list[str] = []
    lm = models.load_embedded(messages.append)
    assert calls == [models.converted_dir(tmp_path / "fallback")]
    assert "cannot be written" in lm.note and "read-only" in lm.note
    assert lm.note.count(". ") <= 1 and lm.note in messages
    assert torch.equal(_probe_logits(lm), pristine_logits)

    monkeypatch.setattr(os, "mkdir", REAL_MKDIR)  # writable again at the next start:
    monkeypatch.setattr(os, "open", REAL_OPEN)  # the usual folder is used, no note
    again = models.load_embedded()
    assert calls[-1] == models.converted_dir(root) and again.note == ""


def test_a_file_where_the_cache_folder_should_be_falls_back(
    cache_copy, monkeypatch, tmp_path, pristine_logits
):
    _, calls = cache_copy
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker))
    lm = models.load_embedded()
    assert calls == [models.converted_dir(tmp_path / "fallback")]
    assert "a file is in the way" in lm.note
    assert torch.equal(_probe_logits(lm), pristine_logits)
    assert models.load_embedded().note == lm.note and len(calls) == 1  # reused, not redone


def test_nothing_writable_loads_the_gguf_in_memory(cache_copy, monkeypatch, tmp_path, lm):
    root, calls = cache_copy
    shutil.rmtree(root)
    _read_only(monkeypatch, root, tmp_path / "fallback")
    loaded = []
    monkeypatch.setattr(
        models,
        "_from_gguf",
        lambda source, eager=True: loaded.append(source) or (lm.model, lm.tokenizer),
    )
    got = models.load_embedded()
    assert loaded == [models.gguf_path()] and not calls
    assert "GGUF file at every start" in got.note


def test_the_status_box_says_repair_not_first_run():
    from components.models import FIRST_RUN, conversion_label

    assert conversion_label("missing") == FIRST_RUN
    label = conversion_label("damaged")
    assert "Repairing" in label and "First run" not in label
    assert conversion_label("ok") is None


# ------------------------------------------------ 5. damaged weights, right size --


def test_random_bytes_inside_the_weights_are_detected_and_repaired(cache_copy, pristine_logits):
    root, calls = cache_copy
    weights = models.converted_dir(root) / models.WEIGHTS
    size = weights.stat().st_size
    with open(weights, "r+b") as f:  # 50 MB of noise in the middle, the size unchanged
        f.seek(size // 3)
        f.write(np.random.default_rng(0).integers(0, 256, 50_000_000, np.uint8).tobytes())
    assert weights.stat().st_size == size
    assert models.cache_state(models.converted_dir(root)) == "damaged"
    messages: list[str] = []
    lm = models.load_embedded(messages.append)
    assert calls and any("Repairing the model cache" in m for m in messages), messages
    assert not any("First run" in m for m in messages)
    assert torch.equal(_probe_logits(lm), pristine_logits)

    messages.clear()  # the next start is a normal one
    models.load_embedded(messages.append)
    assert not messages and len(calls) == 1


def _tensor_span(weights: Path, name: str) -> tuple[int, int]:
    """Where a tensor's bytes lie in a safetensors file (its header gives the offsets)."""
    import json
    import struct

    with open(weights, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    start, end = header[name]["data_offsets"]
    return 8 + n + start, 8 + n + end


def _nan_in_a_norm_weight(weights: Path) -> None:
    """NaN over a norm weight (read by every forward pass) between two sampled blocks."""
    size = weights.stat().st_size
    sampled = [
        max(0, size - models.SAMPLE_BYTES) * i // (models.SAMPLE_BLOCKS - 1)
        for i in range(models.SAMPLE_BLOCKS)
    ]
    start, end = next(
        (a, b)
        for a, b in (
            _tensor_span(weights, f"model.layers.{i}.input_layernorm.weight") for i in range(30)
        )
        if not any(s < b and a < s + models.SAMPLE_BYTES for s in sampled)
    )
    with open(weights, "r+b") as f:
        f.seek(start)
        f.write(np.full((end - start) // 4, np.nan, np.float32).tobytes())
    assert weights.stat().st_size == size


def test_nan_weights_that_slip_past_the_checksum_are_caught_by_the_first_forward(
    cache_copy, pristine_logits
):
    root, calls = cache_copy
    _nan_in_a_norm_weight(models.converted_dir(root) / models.WEIGHTS)
    assert models.cache_state(models.converted_dir(root)) == "ok"  # the checksum misses it
    messages: list[str] = []
    lm = models.load_embedded(messages.append)
    assert calls and any("NaN" in m and "Repairing" in m for m in messages), messages
    assert torch.equal(_probe_logits(lm), pristine_logits)
    messages.clear()
    models.load_embedded(messages.append)  # the next start is a normal one
    assert not messages and len(calls) == 1


def test_nan_weights_in_a_read_only_cache_load_the_gguf_instead(cache_copy, monkeypatch, lm):
    root, calls = cache_copy
    _nan_in_a_norm_weight(models.converted_dir(root) / models.WEIGHTS)
    _read_only(monkeypatch, root)
    monkeypatch.setattr(models, "_from_gguf", lambda source, eager=True: (lm.model, lm.tokenizer))
    got = models.load_embedded()
    assert not calls and "cannot be rewritten" in got.note and got.model is lm.model


def test_a_cache_from_before_checksums_gets_one(cache_copy):
    import json

    root, calls = cache_copy
    marker = models.converted_dir(root) / models.MARKER
    info = json.loads(marker.read_text())
    digest = info.pop("weights_digest")
    marker.write_text(json.dumps(info))
    assert models.cache_state(models.converted_dir(root)) == "ok"
    models.load_embedded()
    assert json.loads(marker.read_text())["weights_digest"] == digest and not calls


# ------------------------------------------------------ 6. the model id field --


@pytest.mark.parametrize(
    "typed",
    [
        "/etc/passwd",
        "../../etc",
        "~/.ssh",
        "..",
        "a/../b",
        "a/b/c",
        "x" * 300,
        "",
        "<script>alert(1)</script>",
        "https://evil.example/model",
        "[x](https://e.x)",
        "data",  # a folder in the server's working directory
    ],
)
def test_only_hub_ids_are_accepted(typed, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv(models.ALLOW_LOCAL_ENV, raising=False)
    with pytest.raises(models.ModelUnavailable):
        models.checked_model_id(typed)


def test_hub_ids_pass():
    for ok in ("gpt2", "EleutherAI/pythia-70m", "HuggingFaceTB/SmolLM2-360M-Instruct"):
        assert models.checked_model_id(f" {ok} ") == ok


def test_server_folders_load_only_when_the_operator_allows(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(models.ALLOW_LOCAL_ENV, raising=False)
    cache = str(models.converted_dir())
    for folder in (cache, models.encoder_path()):
        with pytest.raises(models.ModelUnavailable, match="not a Hugging Face hub id"):
            models.load_hub(folder)
    monkeypatch.setenv(models.ALLOW_LOCAL_ENV, "1")
    with pytest.raises(models.ModelUnavailable, match="causal language model"):
        models.load_hub(models.encoder_path())  # MiniLM: its LM head would be random


def test_a_bug_is_not_reported_as_a_hub_failure(monkeypatch):
    def broken(*_a, **_k):
        raise TypeError("unexpected keyword argument")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_from_folder", broken)
    with pytest.raises(TypeError):
        models.load_hub("gpt2")


def test_load_causal_lm_is_gone():
    assert not hasattr(models, "load_causal_lm")


MARKDOWN_ATTACK = "[click](https://evil.example) ![img](https://evil.example/x.png) $x$ <b>"


def _unescaped(text: str, chars: str = "[]()!$<>") -> list[str]:
    return [c for i, c in enumerate(text) if c in chars and (i == 0 or text[i - 1] != "\\")]


def test_the_typed_id_is_echoed_as_plain_text(monkeypatch):
    from apptest_util import open_page

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = open_page("pages/06_tokenization.py")
    at.session_state["shared.model"] = MARKDOWN_ATTACK
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning if "evil" in w.value]
    assert warnings and not _unescaped(warnings[0]), warnings


def test_page07_warnings_show_the_typed_word_as_plain_text():
    from apptest_util import open_page

    at = open_page("pages/07_embeddings.py")
    from components.frame import plain_markdown

    typed = "[x](https://e.x)"
    at.text_input(key="embeddings.ctx_word").set_value(typed).run()
    assert not at.exception, at.exception
    shown = [m.value for m in [*at.warning, *at.info] if "e\\.x" in m.value or "e.x" in m.value]
    assert len(shown) == 2 and all(plain_markdown(typed) in m and typed not in m for m in shown), (
        shown
    )


# ------------------------------------------------------------- 7. page 20's Stop --


class StopPressed(Exception):
    pass


def test_needle_job_stops_within_a_trial_when_its_report_raises(lm, monkeypatch):
    """Streamlit's Stop raises inside the next `report`; no token may be generated after it."""
    steps = []
    real = context_window.generate_stream

    def counting(*args, **kwargs):
        for step in real(*args, **kwargs):
            steps.append(step)
            yield step

    monkeypatch.setattr(context_window, "generate_stream", counting)  # where the probe calls it
    reports = []

    def report(fraction, text="", partial=None):
        reports.append((fraction, text))
        if len(reports) == 3:  # trial 1, after its second answer token
            raise StopPressed

    with pytest.raises(StopPressed):
        context_window.needle_trials(lm, [64], [0.0, 0.5, 1.0], seed=3, report=report)
    assert len(steps) == 2 and reports[-1][1].startswith("Trial 1 of 3")
    assert 0 < reports[-1][0] < 1 / 3


def test_needle_estimate_grows_with_the_haystack():

    costs = [context_window.ForwardCost(n, n / 1000, 0, 0, 0, 0) for n in (32, 64, 128, 256)]
    short = context_window.needle_estimate_s([(128, 0.0)], costs)
    assert short == pytest.approx(
        (128 + context_window.NEEDLE_PROMPT_EXTRA) / 1000 + context_window.NEEDLE_NEW_TOKENS * 0.032
    )
    assert context_window.needle_estimate_s([(1024, 0.0)], costs) > 2 * short


# -------------------------------------------------- 8. nobody holds a core --


def test_heavy_work_serves_waiters_in_arrival_order():
    """A thread that releases and at once re-acquires must queue behind the waiting ones."""
    slots = models.FairSlots(1)
    order: list[str] = []
    slots.acquire()

    def waiter(name: str) -> None:
        with slots:
            order.append(name)

    b = threading.Thread(target=waiter, args=("B",))
    b.start()
    while slots.waiting() < 1:
        time.sleep(0.001)
    c = threading.Thread(target=waiter, args=("C",))
    c.start()
    while slots.waiting() < 2:
        time.sleep(0.001)
    slots.release()
    slots.acquire()  # the releasing thread comes straight back (a per-step training loop)
    order.append("A")
    slots.release()
    b.join()
    c.join()
    assert order == ["B", "C", "A"]
    assert isinstance(models.HEAVY_WORK, models.FairSlots)


def test_play_rests_so_that_a_learner_uses_at_most_its_share_of_a_core():
    from components.playground import PLAY_CPU_SHARE, pause_after

    for work in (0.01, 0.1, 0.3):
        rest = pause_after(work)
        assert work / (work + rest) == pytest.approx(PLAY_CPU_SHARE)
    assert pause_after(0.0) == 0.0
