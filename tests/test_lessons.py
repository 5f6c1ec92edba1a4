"""Lessons: the file format's validation (core/lessons.py), the shipped lessons, the link that
carries a lesson, and the banner and builder in the app (AppTest)."""

from __future__ import annotations

import json

import pytest

from core.lessons import (
    MAX_LINK_CHARS,
    MAX_STEPS,
    Lesson,
    LessonError,
    Step,
    decode_lesson,
    encode_lesson,
    parse_lesson,
    shipped_lesson,
    shipped_lessons,
)
from tests.apptest_util import open_page


def lesson_json(**overrides) -> str:
    raw = {
        "title": "A lesson",
        "steps": [{"page": "decoding", "say": "Hot.", "settings": {"decoding.temperature": "1.5"}}],
    }
    raw.update(overrides)
    return json.dumps(raw)


def test_a_valid_lesson_parses():
    lesson = parse_lesson(lesson_json())
    assert lesson.title == "A lesson"
    assert lesson.steps[0] == Step("decoding", "Hot.", {"decoding.temperature": "1.5"})
    assert lesson.steps[0].page_file == "pages/19_decoding.py"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (lesson_json(steps=[{"page": "nowhere"}]), "unknown page 'nowhere'"),
        (lesson_json(steps=[{"page": "decoding", "settings": {"x.y": "1"}}]), "not a control"),
        (
            lesson_json(steps=[{"page": "decoding", "settings": {"decoding.top_k": {"a": 1}}}]),
            "must be text or a number",
        ),
        (lesson_json(steps=[{"page": "decoding", "say": 5}]), "must be text"),
        (lesson_json(steps=[{"page": "decoding", "say": "x" * 301}]), "at most 300"),
        (lesson_json(steps=[{"page": "decoding"}] * (MAX_STEPS + 1)), f"at most {MAX_STEPS}"),
        (lesson_json(steps=[]), "non-empty list"),
        (lesson_json(title=""), "title is empty"),
        (lesson_json(minutes=True), "minutes"),
        (lesson_json(steps=[{"page": "decoding", "extra": 1}]), "unknown fields"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_a_bad_lesson_says_what_is_wrong(text, says):
    with pytest.raises(LessonError, match=says):
        parse_lesson(text)


def test_a_file_that_is_not_text_or_too_big_is_refused():
    with pytest.raises(LessonError, match="not UTF-8"):
        parse_lesson(b"\xff\xfe\x00bad")
    with pytest.raises(LessonError, match="bytes"):
        parse_lesson(b" " * 60_000)


def test_a_lesson_round_trips_through_a_link():
    lesson = parse_lesson(lesson_json())
    code = encode_lesson(lesson)
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_lesson(code) == lesson
    with pytest.raises(LessonError, match="damaged|not valid JSON|UTF-8"):
        decode_lesson(code[:-7] + "!!!!")


def test_a_lesson_too_long_for_a_link_says_so():
    steps = tuple(Step("decoding", "word " * 59) for _ in range(MAX_STEPS))
    with pytest.raises(LessonError, match="too long for a link"):
        encode_lesson(Lesson("Long", steps))
    with pytest.raises(LessonError, match="longer than"):
        decode_lesson("A" * (MAX_LINK_CHARS + 1))


def test_shipped_lessons_are_valid_and_about_45_minutes():
    lessons = shipped_lessons()
    assert {"transformer_reads_a_sentence", "pretraining_to_chat_assistant"} <= set(lessons)
    for lesson in lessons.values():
        assert 6 <= len(lesson.steps) <= 8
        assert lesson.minutes == 45
        assert all(step.say for step in lesson.steps)
    with pytest.raises(LessonError, match="No shipped lesson"):
        shipped_lesson("../etc/passwd")


def test_builder_adds_reorders_removes_and_shares():
    at = open_page("pages/19_decoding.py")
    at.slider(key="decoding.temperature").set_value(1.5).run()
    at.text_input(key="lesson.say").input("Hot sampling").run()
    at.button(key="lesson.add").click().run()
    at.switch_page("pages/17_rlhf.py").run()
    at.button(key="lesson.add").click().run()
    draft = at.session_state["lesson.draft"]
    assert [s.page for s in draft] == ["decoding", "rlhf"]
    assert draft[0].settings == {"decoding.temperature": "1.5"}
    assert draft[0].say == "Hot sampling"
    at.button(key="lesson.up1").click().run()
    assert [s.page for s in at.session_state["lesson.draft"]] == ["rlhf", "decoding"]
    link = next(c.value for c in at.code if "custom=" in c.value)
    code = link.split("custom=")[1].split("&")[0]
    assert [s.page for s in decode_lesson(code).steps] == ["rlhf", "decoding"]
    at.button(key="lesson.drop0").click().run()
    assert [s.page for s in at.session_state["lesson.draft"]] == ["decoding"]
    assert not at.exception


def test_a_bad_upload_changes_nothing():
    at = open_page("pages/19_decoding.py")
    at.button(key="lesson.add").click().run()
    before = list(at.session_state["lesson.draft"])
    uploader = at.get("file_uploader")[0]
    uploader.upload("bad.json", b'{"title": "x", "steps": [{"page": "mars"}]}', "application/json")
    at.run()
    assert any("nothing changed" in e.value and "mars" in e.value for e in at.error)
    assert at.session_state["lesson.draft"] == before


def test_a_step_may_set_the_shared_model_and_a_lesson_link_opens_it(tiny_hub):
    settings = {"model": "tiny-test/gpt2", "decoding.temperature": "1.5"}
    lesson = parse_lesson(
        lesson_json(steps=[{"page": "decoding", "say": "A GPT-2.", "settings": settings}])
    )
    assert lesson.steps[0].settings == settings
    at = open_page("pages/19_decoding.py")
    at.query_params["custom"] = encode_lesson(lesson)
    at.query_params["step"] = "1"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["shared.model"] == "tiny-test/gpt2"
