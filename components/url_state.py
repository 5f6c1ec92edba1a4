"""Every control of a page kept in its address, so a copied link opens the same view.

One mechanism for every page: a keyed widget whose key is namespaced by a concept's slug
(`decoding.temperature`, `context.budget` ...) is bound to the URL with Streamlit's own
`bind="query-params"`, without the page asking. Streamlit then does the rest: a fresh session
seeds the widget from `?decoding.temperature=1.3` (parsed with the widget's own type, clamped
to its range, unknown options dropped), a change writes the URL from the browser (in a fragment
too), and a value equal to the default stays out of the link.

The frame adds what Streamlit does not: a note when a link's value could not be used, a cap
on the link's length (long texts stay out of it, with a note), and "Reset this page".
"""

from __future__ import annotations

import functools
from urllib.parse import urlencode

import streamlit as st
from streamlit.elements.widgets import (
    button_group,
    checkbox,
    color_picker,
    multiselect,
    number_input,
    radio,
    select_slider,
    selectbox,
    slider,
    text_widgets,
)
from streamlit.runtime.state import get_session_state
from streamlit.runtime.state.common import WidgetMetadata
from streamlit.runtime.state.query_params import _coerce_value_for_query_url

from components.tokens import escape_markdown
from core.concepts import CONCEPTS
from core.lessons import key_prefix

# keys that are not settings: the guessing game's typed guess
NOT_SETTINGS = ("lm_objective.guess",)
URL_MAX_CHARS = 2_000  # the whole query string; browsers and proxies cap far above this
VALUE_MAX_CHARS = 500  # one value (a typed text) longer than this stays out of the link

_WIDGETS = (
    (slider.SliderMixin, "_slider"),
    (select_slider.SelectSliderMixin, "_select_slider"),
    (selectbox.SelectboxMixin, "_selectbox"),
    (radio.RadioMixin, "_radio"),
    (checkbox.CheckboxMixin, "_checkbox"),
    (number_input.NumberInputMixin, "_number_input"),
    (text_widgets.TextWidgetsMixin, "_text_input"),
    (text_widgets.TextWidgetsMixin, "_text_area"),
    (multiselect.MultiSelectMixin, "_multiselect"),
    (button_group.ButtonGroupMixin, "_internal_button_group"),
    (color_picker.ColorPickerMixin, "_color_picker"),
)


PREFIXES = tuple(f"{key_prefix(c.slug)}." for c in CONCEPTS)


def is_setting(key: object) -> bool:
    """A widget key the URL keeps: namespaced by a concept, not a hidden state. (Buttons are
    never bound: only value widgets are.)"""
    return isinstance(key, str) and key.startswith(PREFIXES) and not key.startswith(NOT_SETTINGS)


def _bind_settings(method):
    @functools.wraps(method)
    def bound(self, *args, **kwargs):
        key = kwargs.get("key")
        if is_setting(key):
            st.session_state.setdefault("url.drawn", set()).add(key)
        if kwargs.get("bind") is None and is_setting(key):
            value = st.session_state.get(key)
            if isinstance(value, str) and len(value) > VALUE_MAX_CHARS:
                _too_long().add(key)  # a long typed text stays out of the link
            else:
                kwargs["bind"] = "query-params"
        return method(self, *args, **kwargs)

    bound.__url_state__ = True
    return bound


def _too_long() -> set[str]:
    return st.session_state.setdefault("url.too_long", set())


def install() -> None:
    """Bind every settings widget to the URL (idempotent; once per process is enough)."""
    for mixin, name in _WIDGETS:
        method = getattr(mixin, name)
        if not getattr(method, "__url_state__", False):
            setattr(mixin, name, _bind_settings(method))


install()


def _session():
    return get_session_state()._state  # the SessionState behind st.session_state


def _bound_widgets(prefix: str) -> dict[str, WidgetMetadata]:
    """The settings widgets this session registered under `prefix`: key -> metadata."""
    state = _session()
    out = {}
    for widget_id, key in list(state._key_id_mapper.id_key_mapping.items()):
        meta = state._new_widget_state.widget_metadata.get(widget_id)
        if key.startswith(prefix) and meta is not None and meta.bind == "query-params":
            out[key] = meta
    return out


def current_settings(slug: str) -> dict[str, str | list[str]]:
    """The page's controls that differ from their defaults, in the link's own form (what
    Streamlit writes into the address bar for a bound widget)."""
    out: dict[str, str | list[str]] = {}
    drawn = st.session_state.get("url.drawn", set())  # hidden controls (another tab's) stay out
    for key, meta in sorted(_bound_widgets(f"{key_prefix(slug)}.").items()):
        if key not in st.session_state or key not in drawn:
            continue
        try:
            now = meta.serializer(st.session_state[key])
            default = meta.serializer(meta.deserializer(None))
        except Exception:  # noqa: BLE001  (a widget whose options changed since it was drawn)
            continue
        if now != default:
            value = _coerce_value_for_query_url(now, meta.value_type)
            out[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return out


def view_settings(slug: str) -> dict[str, str | list[str]]:
    """What a link to this view carries: the shared prompt when it is not the default (many
    controls depend on it: a slider over its tokens), a hub model when one is picked, and the
    page's own settings."""
    from components.state import DEFAULT_PROMPT, MODEL_KEY, PROMPT_KEY
    from core.runtime.model_ids import EMBEDDED_ID

    prompt = st.session_state.get(PROMPT_KEY, DEFAULT_PROMPT)
    out: dict[str, str | list[str]] = {}
    if prompt != DEFAULT_PROMPT and len(prompt) <= VALUE_MAX_CHARS * 2:
        out["prompt"] = prompt
    model = st.session_state.get(MODEL_KEY, EMBEDDED_ID)
    if model != EMBEDDED_ID:
        out["model"] = model  # frame.MODEL_PARAM
    out.update(current_settings(slug))
    return out


def query_string(params: dict[str, str | list[str]]) -> str:
    return urlencode(params, doseq=True)


def page_link(slug: str, extra: dict[str, str] | None = None) -> str:
    """A link to this page with its current settings (and the shared prompt and model),
    capped at URL_MAX_CHARS: the longest values leave it first."""
    params: dict[str, str | list[str]] = dict(extra or {})
    params.update(view_settings(slug))
    while len(query_string(params)) > URL_MAX_CHARS and params:
        del params[max(params, key=lambda k: len(query_string({k: params[k]})))]
    query = query_string(params)
    return f"/{slug}" + (f"?{query}" if query else "")


def link_params(slug: str) -> dict[str, str | list[str]]:
    """The link's parameters that belong to this page's controls."""
    prefix = f"{key_prefix(slug)}."
    out: dict[str, str | list[str]] = {}
    for k in st.query_params:
        if k.startswith(prefix):
            values = st.query_params.get_all(k)
            out[k] = values[0] if len(values) == 1 else values
    return out


def unused_link_values(slug: str, given: dict[str, str | list[str]]) -> list[str]:
    """The link's values for this page that it could not restore: a key naming no control of
    the page, or a value the control refused (out of its range, not one of its options)."""
    bound = _bound_widgets(f"{key_prefix(slug)}.")
    now = current_settings(slug)
    unused = []
    for key, raw in given.items():
        if key not in bound:
            unused.append(f"{key} (no such control here)")
        elif now.get(key) is None or _as_list(now[key]) != _as_list(raw):
            unused.append(f"{key}={','.join(_as_list(raw))[:40]}")
    return unused


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def reset_page(slug: str) -> None:
    """Every control of the page back to its default, and out of the link. A control bound to
    the link is set to its default (Streamlit then drops its parameter); other keys go."""
    prefix = f"{key_prefix(slug)}."
    bound = _bound_widgets(prefix)
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        if key in bound:
            st.session_state[key] = bound[key].deserializer(None)
        else:
            del st.session_state[key]
    for key in [k for k in st.query_params if k.startswith(prefix) and k not in bound]:
        del st.query_params[key]


def base_url() -> str:
    """The app's root address as the browser sees it ('http://host:8501/'), or '/' where the
    browser did not say (tests)."""
    url = (st.context.url or "").rstrip("/")
    last = url.rsplit("/", 1)[-1] if url.count("/") > 2 else ""
    if last in {c.slug for c in CONCEPTS}:
        url = url[: -len(last) - 1]
    return f"{url}/" if url else "/"


def begin(slug: str) -> None:
    """At the top of a page: remember the link's values when the page is entered, so the end
    of the page can say which of them it could not restore."""
    st.session_state["url.too_long"] = set()
    st.session_state["url.drawn"] = set()  # the settings widgets this run draws
    if st.session_state.get("url.page") != slug:
        st.session_state["url.page"] = slug
        given = link_params(slug)
        if given:
            st.session_state["url.given"] = given
    st.session_state["url.notes"] = st.container()


def end(slug: str) -> None:
    """At the end of a page: a note for what the link could not carry or restore."""
    notes = []
    given = st.session_state.pop("url.given", None)
    if given:
        unused = unused_link_values(slug, given)
        if unused:
            notes.append(
                "This link's settings that could not be used here (unknown, out of range "
                "or not an option; the page shows its default): " + ", ".join(unused)
            )
    model_note = st.session_state.pop("url.model_note", None)  # the frame's, on a link's model
    if model_note:
        notes.append(model_note)
    long = sorted(st.session_state.get("url.too_long", ()))
    if long:
        notes.append(
            f"Not kept in this page's link (longer than {VALUE_MAX_CHARS} characters): "
            + ", ".join(long)
        )
    where = st.session_state.get("url.notes")
    for note in notes:
        (where or st).info(escape_markdown(note), icon=":material/link_off:")
