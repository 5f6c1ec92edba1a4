"""Cached wrappers around core's model layer: one model per process, one trace per prompt."""

from __future__ import annotations

import threading
import time
import weakref

import streamlit as st

from components.memo import STORE, byte_cached
from components.state import DEFAULT_PROMPT, MODEL_KEY, PROMPT_KEY  # noqa: F401 (re-exported)
from core.inspect.trace import TRACE_TOKEN_CAP, Trace, run_trace
from core.runtime import budget as core_budget
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
    """The shared, read-only model for an id; raises ModelUnavailable for ids that cannot load
    (offline, unknown id, or too big for the memory budget beside what learners use)."""
    _note_use(model_id)
    if model_id in _RESIDENT:
        return _load_uncounted(model_id)  # a cache hit
    with _LOAD_LOCK:  # one first load at a time, so two budget checks cannot both pass
        if model_id not in _RESIDENT:
            need = core_models.load_bytes_needed(model_id)
            if need is not None:
                make_room(need, f"Loading {model_id.split('/')[-1]}", keep=model_id)
        lm = _load_uncounted(model_id)
        _RESIDENT[model_id] = lm
        return lm


# --- the memory budget: which models are loaded, which sessions use them ----------------------

# Models loaded in this process, by id, held weakly: an entry goes when the model is freed.
_RESIDENT: weakref.WeakValueDictionary[str, core_models.LoadedModel] = weakref.WeakValueDictionary()
_LOAD_LOCK = threading.RLock()
# Which model each session last asked for (session id -> (model id, time)).
_USERS: dict[str, tuple[str, float]] = {}
SESSION_IDLE_S = 1800.0  # a session silent this long no longer keeps its model loaded


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _note_use(model_id: str) -> None:
    session = _session_id()
    if session is not None and model_id == st.session_state.get(MODEL_KEY, model_id):
        _USERS[session] = (model_id, time.monotonic())


def _live_sessions() -> set[str] | None:
    """Ids of the sessions connected now (None when the runtime cannot tell, as in AppTest)."""
    try:
        from streamlit.runtime import Runtime

        manager = Runtime.instance()._session_mgr  # no public API lists sessions in 1.67
        return {info.session.id for info in manager.list_active_sessions()}
    except Exception:  # noqa: BLE001 (no runtime, or a Streamlit without that attribute)
        return None


def users_of(model_id: str) -> int:
    """How many sessions (other than this one) use `model_id` now."""
    live, me, now = _live_sessions(), _session_id(), time.monotonic()
    for session, (_, seen) in list(_USERS.items()):
        if (live is not None and session not in live) or now - seen > SESSION_IDLE_S:
            _USERS.pop(session, None)
    return sum(1 for s, (m, _) in _USERS.items() if m == model_id and s != me)


def unload(model_id: str) -> None:
    """Forget a model's cache entries (and its int8 copy, engine and traces) and free it."""
    from core.runtime import engine

    lm = _RESIDENT.get(model_id)
    if model_id == core_models.EMBEDDED_ID and core_models.gguf_path() is not None:
        _embedded.clear()
        _LOADED.clear()
    else:
        _hub.clear(model_id)
    _int8.clear(model_id)
    _RESIDENT.pop(model_id, None)
    _INT8_RESIDENT.pop(model_id, None)
    if lm is not None:
        with engine._ENGINES_LOCK:
            engine._ENGINES.pop(id(lm.model), None)
        core_models.hollow(lm.model)  # whoever still holds the object, its memory goes
    del lm
    STORE.clear()  # traces hold no model, but what they cost is better spent on the new one
    core_models.release_unreferenced()


def make_room(need: int, what: str, keep: str | None = None) -> core_budget.Verdict:
    """Check that `need` bytes fit under the budget; unload the models no session uses when
    they do not; raise ModelUnavailable with one sentence when it still does not fit."""
    verdict = core_budget.budget().check(need)
    if verdict.fits:
        return verdict
    unused = [m for m in list(_RESIDENT.keys()) if m != keep and users_of(m) == 0]
    for model_id in unused:
        unload(model_id)
    verdict = core_budget.budget().check(need)
    if not verdict.fits:
        in_use = [m.split("/")[-1] for m in list(_RESIDENT.keys()) if m != keep]
        held = f" ({', '.join(in_use)} stays loaded for the learners using it)" if in_use else ""
        raise core_models.ModelUnavailable(
            verdict.sentence(what).rstrip(".") + f"{held}, so it would not fit. The operator "
            f"can raise {core_budget.LIMIT_ENV} if the machine has more."
        )
    return verdict


def _load_uncounted(model_id: str) -> core_models.LoadedModel:
    if model_id == core_models.EMBEDDED_ID and core_models.gguf_path() is not None:
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
    """The model picked in the sidebar, falling back to the default one if it cannot load.

    When not even the default loads (no embedded package and no hub: Streamlit Cloud during
    a hub outage), the page says so in one sentence and stops there."""
    lm = get_lm_or_none()
    if lm is None:
        st.stop()
    return lm


def get_lm_or_none() -> core_models.LoadedModel | None:
    """As `get_lm`, but None (after the one sentence) when no model can be loaded, for pages
    whose model is optional."""
    model_id = current_model_id()
    if model_id != core_models.EMBEDDED_ID:
        try:
            return load_model(model_id)
        except core_models.ModelUnavailable as exc:
            st.session_state[MODEL_KEY] = core_models.EMBEDDED_ID
            st.session_state["shared.model_error"] = str(exc)
    try:
        return load_model(core_models.EMBEDDED_ID)
    except core_models.ModelUnavailable as exc:
        st.warning(str(exc), icon="⚠️")  # our own sentence, no typed text in it
        return None


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


_INT8_RESIDENT: weakref.WeakValueDictionary[str, core_models.LoadedModel] = (
    weakref.WeakValueDictionary()
)


def load_int8(model_id: str) -> core_models.LoadedModel:
    """Fast mode's model: the shared model's int8 copy (its own tensors only for the weights).
    When the copy would not fit in the memory budget, the page says so and stops there."""
    lm = load_model(model_id)  # any status box of a first load shows outside the cached call
    if model_id not in _INT8_RESIDENT:
        with _LOAD_LOCK:
            try:
                make_room(core_budget.int8_bytes(lm.model), "The int8 copy", keep=model_id)
            except core_models.ModelUnavailable as exc:
                st.warning(f"Fast mode is not available right now: {exc}", icon="⚠️")
                st.stop()
    q = _int8(model_id)
    _INT8_RESIDENT[model_id] = q
    return q
