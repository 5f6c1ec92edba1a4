"""The frame every page starts with: page config, sectioned sidebar, model picker, prompt."""

from __future__ import annotations

import inspect
import re
import string
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from components import export, lessons, presenter, url_state  # url_state binds settings to the URL
from components.state import DEFAULT_PROMPT, LINKED_MODEL_KEY, MODEL_KEY, PROMPT_KEY
from core.concepts import Concept, available_concepts, by_section, concept
from core.runtime import model_ids
from core.runtime.memory import keep_memory_low

keep_memory_low()  # once per server process: two malloc arenas, freed pages trimmed

PROMPT_MAX_CHARS = 20_000
URL_PROMPT_MAX_CHARS = 1_000  # longer prompts stay out of the link (browsers cap URL length)
OTHER = "Another hub model…"
MODEL_PARAM = "model"  # the link's parameter for a hub model (the embedded one is left out)


_MD_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def plain_markdown(text: str) -> str:
    """Typed or model text for st.markdown/st.warning, shown exactly as typed: every ASCII
    punctuation mark is backslash-escaped (CommonMark allows it for all of them), so no link,
    image, HTML, LaTeX, code span or auto-linked address can form; line breaks become spaces."""
    return _MD_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def _label(model_id: str) -> str:
    """The picker's label: a short name and where the model comes from (the package shipped
    with the app, or the Hugging Face hub, as on Streamlit Cloud). Short, so that it fits the
    sidebar's picker uncut; the whole id is in the picker's help."""
    if model_id == model_ids.EMBEDDED_ID:
        return f"SmolLM2-135M ({model_ids.embedded_source_label()})"
    return f"{model_id.rsplit('/', 1)[-1]} (hub)"


MOVED_NOTICE = (
    "This page moved to another server: the one that held your session stopped (a restart, "
    "or one of several servers taken out). Your controls kept their values, but what it had "
    "computed for you (generated text, a trained model, a job in progress) and a hub model you "
    "picked are gone: press the page's button again."
)


def _full_name(model_id: str) -> str:
    if model_id == model_ids.EMBEDDED_ID:
        return f"SmolLM2-135M-Instruct, {model_ids.embedded_source_label()}"
    return f"{model_id} from the Hugging Face hub"


def _browser_sent_widgets() -> bool:
    """Whether this run came with widget values from the browser. In a session's first run that
    means the browser was already showing the page, served by a process that is gone."""
    try:  # Streamlit's own session state; if its internals change, no notice rather than an error
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        return len(get_script_run_ctx().session_state._state._new_widget_state) > 0
    except Exception:
        return False


def _init_state() -> None:
    if PROMPT_KEY not in st.session_state and _browser_sent_widgets():
        st.info(MOVED_NOTICE, icon=":material/sync_problem:")  # above the title, once
    if MODEL_KEY not in st.session_state:  # a new session: a shared link may carry the model
        linked = st.query_params.get(MODEL_PARAM, "")[:200]
        st.session_state[MODEL_KEY] = linked or model_ids.EMBEDDED_ID
        if linked and linked != model_ids.EMBEDDED_ID:
            st.session_state[LINKED_MODEL_KEY] = linked  # said if it cannot load here
    if PROMPT_KEY not in st.session_state:  # a new session: a shared link may carry the prompt
        linked = st.query_params.get("prompt", "")
        st.session_state[PROMPT_KEY] = linked[:URL_PROMPT_MAX_CHARS] or DEFAULT_PROMPT


def _prompt_in_url() -> None:
    """Keep the shared prompt in the address bar, so a reload or a shared link keeps it."""
    prompt = st.session_state[PROMPT_KEY]
    wanted = prompt if prompt != DEFAULT_PROMPT and len(prompt) <= URL_PROMPT_MAX_CHARS else None
    if st.query_params.get("prompt") != wanted:
        if wanted is None:
            del st.query_params["prompt"]
        else:
            st.query_params["prompt"] = wanted


def _model_in_url() -> None:
    """Keep a picked hub model in the address bar (the embedded one is the default: left out),
    so a reload or a shared link opens the same model."""
    model_id = st.session_state[MODEL_KEY]
    wanted = None if model_id == model_ids.EMBEDDED_ID else model_id
    if st.query_params.get(MODEL_PARAM) != wanted:
        if wanted is None:
            del st.query_params[MODEL_PARAM]
        else:
            st.query_params[MODEL_PARAM] = wanted


def _on_prompt_change(key: str = "sidebar.prompt") -> None:
    st.session_state[PROMPT_KEY] = st.session_state[key]


def follow_shared_prompt(key: str) -> None:
    """Seed a page's own text box (widget `key`) from the shared prompt, and follow the sidebar.

    The box keeps the learner's own edits until the shared prompt itself changes; then it
    shows the new shared prompt at once, on this page, without leaving it.
    """
    shared = st.session_state.get(PROMPT_KEY, DEFAULT_PROMPT)
    seen = f"{key}.shared_seen"
    if key not in st.session_state and key in st.query_params:
        st.session_state[seen] = shared  # a shared link fills the box itself
        return
    if key not in st.session_state or st.session_state.get(seen) != shared:
        st.session_state[key] = shared
        st.session_state[seen] = shared


def _on_model_change() -> None:
    choice = st.session_state["sidebar.model"]
    if choice == OTHER:
        return  # wait for the typed id
    st.session_state[MODEL_KEY] = choice
    st.session_state.pop("shared.model_error", None)


def _on_custom_model() -> None:
    typed = st.session_state.get("sidebar.custom_model", "").strip()
    if typed:
        st.session_state[MODEL_KEY] = typed
        st.session_state.pop("shared.model_error", None)


def _check_selected_model() -> None:
    """A hub model that cannot load falls back to the embedded one, with the reason shown."""
    model_id = st.session_state[MODEL_KEY]
    if model_id == model_ids.EMBEDDED_ID:
        return
    from components.models import load_model  # imports torch: only when a hub model is picked
    from core.runtime.models import ModelUnavailable

    try:
        load_model(model_id)
    except ModelUnavailable as exc:
        st.session_state[MODEL_KEY] = model_ids.EMBEDDED_ID
        st.session_state["shared.model_error"] = str(exc)
        if st.session_state.pop(LINKED_MODEL_KEY, None) == model_id:  # the page says it too
            st.session_state["url.model_note"] = (
                f"This link was made with the model {model_id}, which could not be loaded "
                f"here, so the page shows SmolLM2-135M-Instruct instead. {exc}"
            )
        return
    st.session_state.pop(LINKED_MODEL_KEY, None)


def _model_picker() -> None:
    _check_selected_model()
    current = st.session_state[MODEL_KEY]
    options = [model_ids.EMBEDDED_ID, *model_ids.HUB_CHOICES]
    if current not in options:
        options.append(current)
    options.append(OTHER)
    if st.session_state.get("sidebar.model") != OTHER:
        st.session_state["sidebar.model"] = current
    st.selectbox(
        "Model",
        options,
        key="sidebar.model",
        on_change=_on_model_change,
        format_func=lambda m: m if m == OTHER else _label(m),
        help=f"Now: {plain_markdown(_full_name(current))}. Every page reads layer and head "
        "counts from the chosen model's config.",
    )
    if st.session_state.get("sidebar.model") == OTHER:
        st.text_input(
            "Hub id of a causal LM",
            key="sidebar.custom_model",
            placeholder="e.g. EleutherAI/pythia-70m",
            max_chars=200,
            on_change=_on_custom_model,
            help="A Hugging Face hub id: 'name' or 'owner/name' (letters, digits, "
            "'-', '_' and '.'). Folders on the server load only if its operator "
            "allows them.",
        )
    error = st.session_state.get("shared.model_error")
    if error:
        st.warning(plain_markdown(error), icon="⚠️")  # it quotes the typed id


def _prompt_box(key: str = "sidebar.prompt", height: int = 110) -> None:
    st.session_state[key] = st.session_state[PROMPT_KEY]
    st.text_area(
        "Shared prompt",
        key=key,
        on_change=_on_prompt_change,
        args=(key,),
        height=height,
        max_chars=PROMPT_MAX_CHARS,
        help="Pages that run the model on text start from this prompt; it follows you "
        "from page to page.",
    )


def presenter_prompt() -> None:
    """In the presenter view the sidebar is folded: a page run on the shared prompt shows the
    prompt box in the page itself, where the class sees it change."""
    if presenter.is_on():
        _prompt_box("presenter.prompt", height=68)


def safe_page_link(page: str, **kwargs) -> None:
    """A page link, or nothing if the server started before the page's file existed."""
    try:
        st.page_link(page, **kwargs)
    except StreamlitPageNotFoundError:
        pass


def _teacher_tools(c: Concept | None) -> None:
    """Presenter view, "Reset this page" and the lesson builder."""
    presenter.toggle()
    if c is not None and st.button(
        "Reset this page",
        icon=":material/restart_alt:",
        key="sidebar.reset",
        help="Every control of this page back to its default (the link too).",
    ):
        url_state.reset_page(c.slug)
        st.rerun()
    lessons.builder(c)


def sidebar(c: Concept | None = None) -> None:
    _init_state()
    with st.sidebar:
        st.page_link("app.py", label="LLM Explorer: home", icon=":material/home:")
        _teacher_tools(c)
        # the model and the shared prompt first: below 25 links they were off a projector's
        # first screen (1280x720)
        _model_picker()
        _prompt_box()
        st.divider()
        for section, concepts in by_section(available_concepts()).items():
            st.caption(section.upper())
            for c in concepts:
                safe_page_link(c.page_file, label=c.label)
    _prompt_in_url()
    _model_in_url()


def page_number(filename: str) -> int:
    """The concept number a page file carries in its name: 'pages/08_attention.py' -> 8."""
    found = re.match(r"(\d+)_", Path(filename).name)
    if found is None:
        raise ValueError(f"{filename}: a page file is named NN_slug.py")
    return int(found.group(1))


def page_slug(filename: str) -> str:
    """The slug a page file carries in its name: 'pages/08_attention.py' -> 'attention'."""
    return concept(page_number(filename)).slug


def page_frame() -> Concept:
    """Call first on every concept page: sets up the page and returns its concept, found from
    the calling page's file name (pages/NN_slug.py)."""
    c = concept(page_number(sys._getframe(1).f_code.co_filename))
    st.set_page_config(
        page_title=f"{c.title} · LLM Explorer",
        page_icon="🧭",
        layout="wide",
        initial_sidebar_state=presenter.sidebar_state(),
    )
    presenter.apply()  # first: the presenter's CSS is in place before anything is drawn
    st.session_state["frame.run"] = st.session_state.get("frame.run", 0) + 1
    lessons.read_link()  # before the sidebar: a lesson's step may set the shared prompt
    sidebar(c)
    lessons.banner(c)
    st.title(f"{c.number:02d} · {c.title}")
    st.caption(c.summary)
    url_state.begin(c.slug)
    export.begin()
    return c


INTRO_LABEL = "The idea in words"


@contextmanager
def intro() -> Iterator[None]:
    """The page's opening explanation. In the presenter view it folds into an expander (in
    large print when opened), so the page's main chart and controls reach a projector's first
    screen; in the normal view it is drawn as it stands.

        with intro():
            st.markdown("...")
    """
    if presenter.is_on():
        with st.expander(INTRO_LABEL, icon=":material/record_voice_over:"):
            yield
    else:
        yield


def page_end() -> None:
    """Call last on every concept page (check_yourself does): notes about the page's link."""
    url_state.end(st.session_state.get("url.page", ""))


def show_code(*objects: object) -> None:
    """The 'Show the code' expander: the core functions this page actually calls."""
    with st.expander("Show the code"):
        for obj in objects:
            st.code(inspect.getsource(obj), language="python")
