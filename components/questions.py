"""Check yourself: one to three questions per page whose right answer is computed from the live
model or the page's own computation at the learner's current settings. One builder per page
slug; each reads the same cached wrappers the page uses, so asking costs no new computation.
Answers live in the session only (widget state), nothing is stored about a learner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from components import frame
from components.tokens import escape_markdown


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    answer: str  # one of options
    why: str  # shown after an answer


BUILDERS: dict[str, Callable[[], list[Question]]] = {}


def builder(slug: str):
    def register(fn: Callable[[], list[Question]]):
        BUILDERS[slug] = fn
        return fn

    return register


def _ask(slug: str, i: int, q: Question) -> None:
    key = f"quiz.{slug}.{i}"
    picked = st.radio(
        escape_markdown(q.text), q.options, index=None, key=key, horizontal=len(q.options) <= 4
    )
    if picked is None:
        return
    if picked == q.answer:
        st.success(f"Right. {escape_markdown(q.why)}")
    else:
        st.error(f"Not quite: the answer is {escape_markdown(q.answer)}. {escape_markdown(q.why)}")


def check_yourself(slug: str | None = None) -> None:
    """Call last on every concept page: its questions, then the notes about its link."""
    if slug is None:
        slug = frame.page_slug(sys._getframe(1).f_code.co_filename)
    build = BUILDERS.get(slug)
    if build is not None:
        try:
            questions = build()
        except Exception:  # noqa: BLE001  (a question never breaks the page it ends)
            questions = []
        if questions:
            with st.expander("Check yourself", icon=":material/quiz:"):
                st.caption(
                    "Computed from the model at your current settings: change them "
                    "and the questions change."
                )
                for i, q in enumerate(questions):
                    _ask(slug, i, q)
    frame.page_end()
