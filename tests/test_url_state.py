"""Every control of every page round-trips through the page's address, and "Reset this page"
returns every control to its default (AppTest, real embedded model)."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import element_tree as et

from components.url_state import is_setting
from core.concepts import CONCEPTS
from core.lessons import key_prefix
from tests.apptest_util import APP, TIMEOUT, open_page

KINDS = (
    "slider",
    "select_slider",
    "selectbox",
    "radio",
    "checkbox",
    "toggle",
    "number_input",
    "text_input",
    "text_area",
    "multiselect",
    "color_picker",
)


class Label(str):
    """An option given by its label, as the browser sends it (the test has no option objects)."""


@pytest.fixture(autouse=True)
def labels_as_values(monkeypatch):
    """Let a selection widget take a Label: its format_func gives the label back as is."""
    for cls in (et.Selectbox, et.Radio, et.SelectSlider, et.Multiselect):
        original = cls.format_func

        def format_func(self, original=original):
            real = original.fget(self)
            return lambda v: str(v) if isinstance(v, Label) else real(v)

        monkeypatch.setattr(cls, "format_func", property(format_func))


LONG_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 8)


def settings_widgets(at: AppTest) -> dict:
    return {w.key: w for kind in KINDS for w in at.get(kind) if is_setting(w.key)}


def _step_number(v, lo, hi, step):
    for candidate in (v + step, v - step):
        if lo <= candidate <= hi:
            return type(v)(round(candidate, 6)) if isinstance(v, float) else candidate
    return None


def _other_option(w):
    current = w.format_func(w.value) if w.value is not None else None
    for option in reversed(w.options):  # the last: the first is often the built-in default
        if option != current:
            return Label(option)
    return None


def change(w) -> bool:
    """Give widget `w` a value other than its current one, as a learner would; False when it
    has none to give (a one-option box)."""
    kind = w.type
    if kind in ("checkbox", "toggle"):
        w.set_value(not w.value)
    elif kind == "slider":
        p = w.proto
        v = w.value
        if isinstance(v, (list, tuple)):
            lo = _step_number(v[0], p.min, v[1], p.step)
            if lo is None:
                return False
            w.set_range(lo, v[1])
        else:
            new = _step_number(v, p.min, p.max, p.step)
            if new is None:
                return False
            w.set_value(new)
    elif kind == "number_input":
        p = w.proto
        lo = p.min if p.has_min else -math.inf
        hi = p.max if p.has_max else math.inf
        new = _step_number(w.value, lo, hi, p.step or 1)
        if new is None:
            return False
        w.set_value(new)
    elif kind in ("text_input", "text_area"):
        w.set_value("Teachers share links")
    elif kind in ("selectbox", "radio", "select_slider"):
        option = _other_option(w)
        if option is None:
            return False
        w.set_value(option)
    elif kind == "multiselect":
        extra = [o for o in w.options if o not in [w.format_func(v) for v in w.value]]
        if not extra:
            return False
        w.set_value([*w.value, Label(extra[0])])
    elif kind == "color_picker":
        w.set_value("#123456")
    else:
        return False
    return True


def the_link(at: AppTest, slug: str) -> dict:
    """The page's link as the app builds it (what "Add this view as a step" captures)."""
    at.button(key="lesson.add").click().run()
    assert not at.exception, at.exception
    step = at.session_state["lesson.draft"][-1]
    assert step.page == slug
    return dict(step.settings)


def open_link(page_file: str, params: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page_file).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("c", CONCEPTS, ids=lambda c: c.slug)
def test_every_control_round_trips_through_the_link(c):
    at = open_page(c.page_file)
    assert not at.exception, at.exception
    if not settings_widgets(at):  # page 11's window slider needs a prompt longer than it
        at.text_area(key="sidebar.prompt").input(LONG_PROMPT).run()
    reading = [b for b in at.button if b.label.startswith("Read every answer with the LM")]
    if not settings_widgets(at) and reading:  # page 17's controls follow its reading job
        reading[0].click().run(timeout=900)
    defaults = {k: w.value for k, w in settings_widgets(at).items()}
    assert defaults, f"{c.slug}: no settings widget found"
    changed = []
    for key, w in settings_widgets(at).items():
        if w.disabled:
            continue
        try:
            if change(w):
                changed.append(key)
        except (ValueError, TypeError):
            pass  # a format_func that cannot take its own label: set through the URL below
    at.run()
    assert not at.exception, at.exception
    before = {k: w.value for k, w in settings_widgets(at).items()}
    moved = [k for k in changed if k in before and before[k] != defaults.get(k)]
    assert moved, f"{c.slug}: no control took a new value"
    link = the_link(at, c.slug)
    assert set(moved) & set(link), f"{c.slug}: no changed control is in the link"

    fresh = open_link(c.page_file, link)
    after = {k: w.value for k, w in settings_widgets(fresh).items()}
    # every control that moved comes back: from the link, or as the default a link leaves out
    for key in (set(link) - {"prompt"}) | set(moved):
        assert after.get(key) == before[key], (key, after.get(key), before[key])
    assert not [i.value for i in fresh.info if "could not be used" in i.value]

    fresh.button(key="sidebar.reset").click().run()
    assert not fresh.exception, fresh.exception
    reset = {k: w.value for k, w in settings_widgets(fresh).items()}
    for key, value in defaults.items():
        if key in reset:
            assert reset[key] == value, (key, reset[key], value)
    prefix = f"{key_prefix(c.slug)}."
    # a text box that follows the shared prompt keeps it (its value after a reset)
    left = [
        k for k in fresh.query_params if k.startswith(prefix) and reset.get(k) != defaults.get(k)
    ]
    assert not left, left


def test_a_bad_link_value_gets_a_note_and_the_default():
    at = open_link(
        "pages/19_decoding.py",
        {"decoding.temperature": "banana", "decoding.nonsense": "1"},
    )
    temperature = at.slider(key="decoding.temperature")
    default = open_page("pages/19_decoding.py").slider(key="decoding.temperature").value
    assert temperature.value == default
    notes = " ".join(i.value for i in at.info).replace("\\", "")
    assert "could not be used" in notes and "decoding.nonsense" in notes


def test_a_picked_hub_model_goes_into_the_link_and_comes_back(tiny_hub):
    at = open_page("pages/19_decoding.py")
    at.session_state["shared.model"] = "tiny-test/gpt2"
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["model"] == "tiny-test/gpt2"  # the address bar
    assert the_link(at, "decoding")["model"] == "tiny-test/gpt2"  # a lesson step, a handout
    back = open_link("pages/19_decoding.py", {"model": "tiny-test/gpt2"})
    assert back.session_state["shared.model"] == "tiny-test/gpt2"
    notes = " ".join(i.value for i in back.info)
    assert "could not be loaded" not in notes
    # the embedded model is the default: it stays out of the link
    at.session_state["shared.model"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    at.run()
    assert "model" not in at.query_params


def test_a_link_model_that_cannot_load_here_gets_a_note(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a server without that model
    at = open_link("pages/19_decoding.py", {"model": "nobody-here/no-such-model"})
    assert at.session_state["shared.model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    notes = " ".join(i.value for i in at.info).replace("\\", "")
    assert "This link was made with the model nobody-here/no-such-model" in notes
    assert "could not be loaded here" in notes
