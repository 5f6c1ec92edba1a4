"""Cached wrappers around core's model layer: one model per process, one trace per prompt."""

from __future__ import annotations

import time

import streamlit as st

from components.memo import byte_cached
from components.state import DEFAULT_PROMPT, MODEL_KEY, PROMPT_KEY  # noqa: F401 (re-exported)
from core.inspect.trace import TRACE_TOKEN_CAP, Trace, run_trace
from core.runtime import models as core_models

# Hub ids that failed recently: offline, the picker must not retry on every rerun. A module
# dict outside the caching rule on purpose: small, and bounded (expired entries are dropped
# whenever one is added, so it holds only the ids that failed in the last RETRY_AFTER_S).
_FAILED: dict[str, tuple[float, str]] = {}
RETRY_AFTER_S = 300.0


@st.cache_resource(show_spinner="Loading SmolLM2-135M-Instruct…")
def _embedded() -> core_models.LoadedModel:
    return core_models.load_embedded()


FIRST_RUN = "First run: converting the embedded SmolLM2 model (once, about 30 s)…"
REPAIR = (
    "Repairing the model cache: its files failed their size or checksum test, so the "
    "embedded SmolLM2 model is converted again (about 30 s)…"
)
UNWRITABLE = (
    "The model cache folder cannot be written, so the embedded SmolLM2 model is "
    "prepared elsewhere, which makes this start slower…"
)
_LOADED: list[core_models.LoadedModel] = []  # the embedded model, once this process has it


def conversion_label(state: str) -> str | None:
    """What the status box says while the first load converts ('missing') or repairs."""
    return {"missing": FIRST_RUN, "damaged": REPAIR}.get(state)


def _embedded_with_status() -> core_models.LoadedModel:
    state = "ok" if _LOADED else core_models.cache_state(core_models.converted_dir())
    if state == "ok":
        lm = _embedded()
    else:  # the first load in this process will be slow: say why
        label = conversion_label(state)
        if core_models.writable_reason(core_models.cache_root()) is not None:
            label = UNWRITABLE
        with st.status(label) as box:
            lm = _embedded()
            box.update(
                label="Model ready; later starts skip this step.", state="complete", expanded=False
            )
    _LOADED[:] = [lm]
    if lm.note and not st.session_state.get("shared.model_note_shown"):
        st.session_state["shared.model_note_shown"] = True
        st.info(lm.note)  # why start-up was slower (a read-only cache folder...), once a session
    return lm


@st.cache_resource(
    show_spinner="Downloading and loading the model from the Hugging Face hub…", max_entries=2
)
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
        now = time.monotonic()
        for old in [k for k, (t, _) in _FAILED.items() if now - t >= RETRY_AFTER_S]:
            del _FAILED[old]
        _FAILED[model_id] = (now, str(exc))
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


@byte_cached(spinner="Running the model over the prompt…")
def _trace(model_id: str, text: str, cap: int, attentions: bool = False) -> Trace:
    # Shared read-only objects, not st.cache_data: a trace holds tens of MB of arrays, and
    # cache_data would unpickle a fresh copy on every rerun of every slider move. The byte
    # budget (components.memo) bounds all traces together, whatever their lengths.
    return run_trace(load_model(model_id), text, cap, attentions=attentions)


def get_trace(
    text: str, cap: int = TRACE_TOKEN_CAP, model_id: str | None = None, attentions: bool = False
) -> Trace:
    """The shared prompt's trace. Attention maps only when asked for (pages 08 and 09, at
    ATTENTION_CAP tokens): at 256 tokens they would be 35 MB of the trace's 53 MB, and the
    pages that read long traces (02, 12, 19) never look at them."""
    model_id = model_id or current_model_id()
    load_model(model_id)
    return _trace(model_id, text, cap, attentions)


@st.cache_resource(show_spinner="Loading all-MiniLM-L6-v2…")
def get_encoder() -> core_models.LoadedEncoder:
    return core_models.load_encoder()


@st.cache_resource(
    show_spinner="Quantising the model's linear layers to int8 (once, a few seconds)…",
    max_entries=1,
)
def _int8(model_id: str) -> core_models.LoadedModel:
    from core.runtime.quantize import int8_variant

    return int8_variant(load_model(model_id))


def load_int8(model_id: str) -> core_models.LoadedModel:
    """Fast mode's model: the shared model's int8 copy (its own tensors only for the weights)."""
    load_model(model_id)  # any status box of a first load shows outside the cached call
    return _int8(model_id)
