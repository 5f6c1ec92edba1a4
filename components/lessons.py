"""Lessons in the app: the banner a learner follows (step 3 of 8, the teacher's line, previous
and next) and the builder a teacher uses in the sidebar (add this view as a step, reorder,
download, share, upload). The format and its validation live in core/lessons.py."""

from __future__ import annotations

import streamlit as st

from components import url_state
from components.state import LINKED_MODEL_KEY, MODEL_KEY, PROMPT_KEY
from components.tokens import escape_markdown
from core.concepts import Concept
from core.lessons import (
    SHARED,
    SHARED_MODEL,
    SHARED_PROMPT,
    Lesson,
    LessonError,
    Step,
    decode_lesson,
    encode_lesson,
    key_prefix,
    parse_lesson,
    shipped_lesson,
    shipped_lessons,
)

ACTIVE = "lesson.active"  # {"lesson": Lesson, "source": {"lesson": name} or {"custom": code}}
STEP = "lesson.step"  # 0-based index of the step being shown
DRAFT = "lesson.draft"  # the steps a teacher is building: list[Step]


def read_link() -> None:
    """A link that carries a lesson (?lesson=name or ?custom=code, with &step=N) starts it."""
    name, code = st.query_params.get("lesson"), st.query_params.get("custom")
    if not name and not code:
        return
    try:
        lesson = shipped_lesson(name) if name else decode_lesson(code)
    except LessonError as exc:
        st.warning(f"This link's lesson could not be opened: {escape_markdown(str(exc))}")
        return
    source = {"lesson": name} if name else {"custom": code}
    try:
        index = int(st.query_params.get("step", "1")) - 1
    except ValueError:
        index = 0
    index = min(max(index, 0), len(lesson.steps) - 1)
    st.session_state[ACTIVE] = {"lesson": lesson, "source": source}
    st.session_state[STEP] = index
    opened = (tuple(source.items()), index)
    if st.session_state.get("lesson.opened") != opened:  # a link just opened: its prompt too
        st.session_state["lesson.opened"] = opened
        _shared_settings(lesson.steps[index])


def _shared_settings(step: Step) -> None:
    """A step's shared prompt and model, which live in the session, not in the page's link.
    A model that cannot load here is said on the page (components.frame)."""
    prompt = step.settings.get(SHARED_PROMPT)
    if isinstance(prompt, str):
        st.session_state[PROMPT_KEY] = prompt
    model = step.settings.get(SHARED_MODEL)
    if isinstance(model, str) and model != st.session_state.get(MODEL_KEY):
        st.session_state[MODEL_KEY] = model
        st.session_state[LINKED_MODEL_KEY] = model


def step_params(step: Step, source: dict[str, str], index: int) -> dict[str, str | list[str]]:
    """The address of a step: its page's settings, the lesson and the step number."""
    params: dict[str, str | list[str]] = {k: v for k, v in step.settings.items() if k not in SHARED}
    params.update(source)
    params["step"] = str(index + 1)
    return params


def go_to(lesson: Lesson, source: dict[str, str], index: int) -> None:
    """Open step `index`: its page, with every control of the page at the step's settings
    (controls the step does not name go back to their defaults)."""
    step = lesson.steps[index]
    st.session_state[STEP] = index
    st.session_state["lesson.opened"] = (tuple(source.items()), index)
    prefix = f"{key_prefix(step.page)}."
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[key]  # the step's own settings come from its address
    _shared_settings(step)
    st.switch_page(step.page_file, query_params=step_params(step, source, index))


def banner(c: Concept | None) -> None:
    """Above the page: the lesson's title, 'step 3 of 8', the teacher's line, previous/next.
    (page_frame calls read_link before the sidebar, so a step's prompt is in its box.)"""
    active = st.session_state.get(ACTIVE)
    if not active:
        return
    lesson, source = active["lesson"], active["source"]
    index = st.session_state.get(STEP, 0)
    step = lesson.steps[index]
    here = c is not None and c.slug == step.page
    with st.container(border=True, key="lesson_banner"):
        st.markdown(
            f"**{escape_markdown(lesson.title)}** · step {index + 1} of {len(lesson.steps)}"
            + ("" if here else f" (on {escape_markdown(step.label)})")
        )
        if step.say:
            st.markdown(f"#### {escape_markdown(step.say)}")
        cols = st.columns([1, 1, 1, 3])
        if cols[0].button("← Previous", disabled=index == 0, key="lesson.prev"):
            go_to(lesson, source, index - 1)
        last = index == len(lesson.steps) - 1
        if cols[1].button("Next →", disabled=last, key="lesson.next", type="primary"):
            go_to(lesson, source, index + 1)
        if not here and cols[2].button("Back to the step", key="lesson.back"):
            go_to(lesson, source, index)
        if cols[3].button("End the lesson", key="lesson.end"):
            st.session_state.pop(ACTIVE, None)
            for key in ("lesson", "custom", "step"):
                if key in st.query_params:
                    del st.query_params[key]
            st.rerun()


def _draft() -> list[Step]:
    return st.session_state.setdefault(DRAFT, [])


def _draft_steps(draft: list[Step]) -> None:
    for i, step in enumerate(draft):
        st.markdown(f"{i + 1}. **{escape_markdown(step.label)}** {escape_markdown(step.say)}")
        st.caption(f"{len(step.settings)} settings")
        up, down, drop = st.columns(3)
        if up.button("↑", key=f"lesson.up{i}", disabled=i == 0, help="Move up"):
            draft[i - 1], draft[i] = draft[i], draft[i - 1]
            st.rerun()
        if down.button("↓", key=f"lesson.down{i}", disabled=i == len(draft) - 1, help="Move down"):
            draft[i + 1], draft[i] = draft[i], draft[i + 1]
            st.rerun()
        if drop.button("✕", key=f"lesson.drop{i}", help="Remove this step"):
            draft.pop(i)
            st.rerun()


def _share(lesson: Lesson) -> None:
    st.download_button(
        "Download (JSON)",
        lesson.to_json(),
        file_name="lesson.json",
        mime="application/json",
        key="lesson.download",
    )
    try:
        code = encode_lesson(lesson)
    except LessonError as exc:
        st.info(str(exc))
        return
    first = lesson.steps[0]
    params = url_state.query_string(step_params(first, {"custom": code}, 0))
    st.caption("Share this link (copy it with the icon):")
    st.code(f"{url_state.base_url()}{first.page}?{params}", language=None, wrap_lines=True)
    if st.button("Start this lesson", key="lesson.start_draft"):
        go_to(lesson, {"custom": code}, 0)


def _upload() -> None:
    uploaded = st.file_uploader("Open a lesson file", type=["json"], key="lesson.upload")
    if uploaded is None:
        return
    marker = (uploaded.name, uploaded.size)
    if st.session_state.get("lesson.uploaded") == marker:
        return  # already read; the draft is the teacher's now
    try:
        lesson = parse_lesson(uploaded.getvalue())
    except LessonError as exc:
        st.error(f"This file is not a lesson; nothing changed. {escape_markdown(str(exc))}")
        return
    st.session_state["lesson.uploaded"] = marker
    st.session_state[DRAFT] = list(lesson.steps)
    st.session_state["lesson.title"] = lesson.title
    st.rerun()


def builder(c: Concept | None) -> None:
    """The sidebar's "Lesson" expander: shipped lessons, and a lesson built from this app."""
    with st.expander("Lesson", icon=":material/school:"):
        try:
            lessons = shipped_lessons()
        except LessonError as exc:  # a damaged file in data/lessons/
            st.warning(escape_markdown(str(exc)))
            lessons = {}
        name = st.selectbox(
            "Shipped lessons",
            list(lessons),
            format_func=lambda n: f"{lessons[n].title} ({len(lessons[n].steps)} steps)",
            key="lesson.shipped",
        )
        if name and st.button("Start", key="lesson.start_shipped"):
            go_to(lessons[name], {"lesson": name}, 0)
        st.divider()
        st.caption("Build your own: open a page, set it up, add it as a step.")
        draft = _draft()
        if c is not None:
            say = st.text_input("Your words for this step", key="lesson.say", max_chars=300)
            if st.button("Add this view as a step", key="lesson.add"):
                settings = url_state.view_settings(c.slug)
                draft.append(Step(page=c.slug, say=say.strip(), settings=settings))
        _draft_steps(draft)
        if draft:
            title = st.text_input("Lesson title", "My lesson", key="lesson.title", max_chars=120)
            try:
                lesson = Lesson(title=title.strip() or "My lesson", steps=tuple(draft))
                _share(parse_lesson(lesson.to_json()))
            except LessonError as exc:
                st.warning(escape_markdown(str(exc)))
        _upload()
