"""Cached wrappers around core's model layer: one model per process, one trace per prompt."""

from __future__ import annotations

import time

import streamlit as st

from components.state import DEFAULT_PROMPT, MODEL_KEY, PROMPT_KEY  # noqa: F401 (re-exported)
from core import models as core_models
from core.trace import TRACE_TOKEN_CAP, Trace, run_trace

# Hub ids that failed recently: offline, the picker must not retry on every rerun.
_FAILED: dict[str, tuple[float, str]] = {}
RETRY_AFTER_S = 300.0


@st.cache_resource(show_spinner="Loading SmolLM2-135M-Instruct…")
def _embedded() -> core_models.LoadedModel:
    return core_models.load_embedded()


def _embedded_with_status() -> core_models.LoadedModel:
    if core_models.cache_is_valid(core_models.converted_dir()):
        return _embedded()
    with st.status("First run: converting the embedded SmolLM2 model (once, about 30 s)…") as s:
        lm = _embedded()
        s.update(label="Model converted and cached; later starts skip this step.",
                 state="complete", expanded=False)
    return lm


@st.cache_resource(show_spinner="Downloading and loading the model from the Hugging Face hub…",
                   max_entries=2)
def _hub(model_id: str) -> core_models.LoadedModel:
    return core_models.load_hub(model_id)


def load_model(model_id: str) -> core_models.LoadedModel:
    """The shared, read-only model for an id; raises ModelUnavailable for ids that cannot load."""
    if model_id == core_models.EMBEDDED_ID:
        if core_models.gguf_path() is None:
            return _hub(model_id)
        return _embedded_with_status()
    failed = _FAILED.get(model_id)
    if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
        raise core_models.ModelUnavailable(failed[1])
    try:
        return _hub(model_id)
    except core_models.ModelUnavailable as exc:
        _FAILED[model_id] = (time.monotonic(), str(exc))
        raise


def current_model_id() -> str:
    return st.session_state.get(MODEL_KEY, core_models.EMBEDDED_ID)


def get_lm() -> core_models.LoadedModel:
    """The model picked in the sidebar, falling back to the embedded one if it cannot load."""
    model_id = current_model_id()
    try:
        return load_model(model_id)
    except core_models.ModelUnavailable as exc:
        st.session_state[MODEL_KEY] = core_models.EMBEDDED_ID
        st.session_state["shared.model_error"] = str(exc)
        return load_model(core_models.EMBEDDED_ID)


def get_prompt() -> str:
    return st.session_state.get(PROMPT_KEY, DEFAULT_PROMPT)


@st.cache_resource(show_spinner="Running the model over the prompt…", max_entries=24, ttl=3600)
def _trace(model_id: str, text: str, cap: int) -> Trace:
    # cache_resource, not cache_data: a trace holds tens of MB of read-only arrays, and
    # cache_data would unpickle a fresh copy on every rerun of every slider move.
    return run_trace(load_model(model_id), text, cap)


def get_trace(text: str, cap: int = TRACE_TOKEN_CAP, model_id: str | None = None) -> Trace:
    model_id = model_id or current_model_id()
    load_model(model_id)
    return _trace(model_id, text, cap)


@st.cache_resource(show_spinner="Loading all-MiniLM-L6-v2…")
def get_encoder() -> core_models.LoadedEncoder:
    return core_models.load_encoder()
