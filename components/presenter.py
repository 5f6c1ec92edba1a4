"""The presenter view, for a projector: larger type, the sidebar folded, the page's top part on
the first screen. A sidebar toggle or `?present=1` in the link turns it on; it follows the
session from page to page. Charts read `chart_text_px()` through `components.charts`."""

from __future__ import annotations

import streamlit as st

PRESENT_KEY = "shared.present"  # non-widget key: survives page switches
NORMAL_TEXT_PX, PRESENTER_TEXT_PX = 12, 15  # the smallest chart text in each view
# Graphviz diagrams at their own size (text at 10 pt = 13 px), scrolling sideways in a narrow
# column, instead of shrunk to the column's width (a tall block diagram's text fell to 7 px).
BASE_CSS = """
<style>
[data-testid="stGraphVizChart"] { overflow-x: auto; }
[data-testid="stGraphVizChart"] > svg { width: auto !important; height: auto !important;
  max-width: none !important; }
/* a page link too long for the sidebar (the current one is bold) wraps instead of being cut */
[data-testid="stPageLink-NavLink"] > span, [data-testid="stPageLink-NavLink"] > span * {
  white-space: normal !important; overflow: visible !important; }
</style>
"""
PRESENTER_CSS = """
<style>
html { font-size: 18px; }
[data-testid="stMainBlockContainer"] { padding-top: 3.6rem; padding-bottom: 1rem;
  max-width: 100%; }
h1 { font-size: 2.1rem !important; padding-top: 0 !important; }
</style>
"""


def init() -> None:
    """Once per session: a link with ?present=1 opens the presenter view."""
    if PRESENT_KEY not in st.session_state:
        st.session_state[PRESENT_KEY] = st.query_params.get("present") == "1"


def is_on() -> bool:
    return bool(st.session_state.get(PRESENT_KEY, False))


def sidebar_state() -> str:
    """For st.set_page_config: the sidebar starts folded in the presenter view."""
    init()
    return "collapsed" if is_on() else "auto"


def chart_text_px() -> int:
    return PRESENTER_TEXT_PX if is_on() else NORMAL_TEXT_PX


def _on_toggle() -> None:
    st.session_state[PRESENT_KEY] = st.session_state["sidebar.present"]


def toggle() -> None:
    """The sidebar switch."""
    st.session_state["sidebar.present"] = is_on()
    st.toggle(
        "Presenter view",
        key="sidebar.present",
        on_change=_on_toggle,
        help="Larger type for a projector; the sidebar starts folded. Links keep it (?present=1).",
    )


def apply() -> None:
    """Inject the page's CSS (the presenter's when on) and keep the flag in the link."""
    st.html(BASE_CSS)
    if is_on():
        st.html(PRESENTER_CSS)
        if st.query_params.get("present") != "1":
            st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]
