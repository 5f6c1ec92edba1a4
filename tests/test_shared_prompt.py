"""The shared prompt: pages follow the sidebar at once, and a link or reload keeps it."""

from __future__ import annotations

import pytest
from apptest_util import APP, open_page
from streamlit.testing.v1 import AppTest


@pytest.mark.parametrize(
    "page, box",
    [
        ("pages/06_tokenization.py", "tokenization.text"),
        ("pages/12_lm_objective.py", "lm_objective.text"),
    ],
)
def test_page_text_follows_the_sidebar_prompt_without_leaving_the_page(page, box):
    at = open_page(page)
    at.text_area(key=box).set_value("My own edit here").run()
    assert at.text_area(key=box).value == "My own edit here"  # kept while the sidebar is still
    at.sidebar.text_area(key="sidebar.prompt").set_value("Paris is the capital of").run()
    assert not at.exception
    assert at.text_area(key=box).value == "Paris is the capital of"


def test_the_prompt_goes_into_the_url_and_a_new_session_reads_it_back():
    at = open_page("pages/06_tokenization.py")
    at.sidebar.text_area(key="sidebar.prompt").set_value("Shared $5 link ✓ <b>").run()
    assert at.query_params["prompt"] in ("Shared $5 link ✓ <b>", ["Shared $5 link ✓ <b>"])

    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["prompt"] = "Shared $5 link ✓ <b>"
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["shared.prompt"] == "Shared $5 link ✓ <b>"


def test_a_prompt_too_long_for_a_link_stays_out_of_the_url():
    at = open_page("pages/06_tokenization.py")
    at.sidebar.text_area(key="sidebar.prompt").set_value("x" * 5_000).run()
    assert not at.exception
    assert "prompt" not in at.query_params
