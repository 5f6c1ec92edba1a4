"""Lessons: an ordered walk through the pages, each step a page, its settings and one line of
the teacher's words. Stored as a small JSON file (shipped ones in data/lessons/) or carried
whole in a link (base64url of the compact JSON). Parsing validates everything: a bad file or
link raises LessonError with a message a teacher can act on, and nothing changes.

    {"title": "How a transformer reads a sentence", "minutes": 45,
     "steps": [{"page": "tokenization", "say": "Text becomes numbers first.",
                "settings": {"tokenization.vocab_size": "300"}}, ...]}

A setting is "prompt" (the shared prompt) or a page control's key (namespaced by the page: `decoding.temperature`) and its
value as the page's address carries it (a string, or a list of strings for a multi-choice).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.concepts import CONCEPTS

LESSONS_DIR = Path(__file__).resolve().parent.parent / "data" / "lessons"
MAX_STEPS = 20
MAX_TITLE = 120
MAX_SAY = 300
MAX_SETTINGS = 40  # per step
MAX_VALUE = 500  # characters of one setting's value
MAX_FILE_BYTES = 50_000
MAX_LINK_CHARS = 1_800  # the encoded lesson in a link (whole address stays near 2,000)
SHARED_PROMPT = "prompt"  # a step may also set the shared prompt every model page starts from
SHARED_MODEL = "model"  # and the model (a hub id; the embedded model is the default)
SHARED = (SHARED_PROMPT, SHARED_MODEL)
NAME = re.compile(r"^[a-z0-9_]{1,40}$")

KEY_ALIASES: dict[str, str] = {}  # a page whose keys were namespaced by another word than its slug
SLUGS = {c.slug: c for c in CONCEPTS}


class LessonError(ValueError):
    """A lesson file or link that cannot be used; the message says why."""


def key_prefix(slug: str) -> str:
    """The namespace of a page's control keys: its slug ('decoding.temperature')."""
    return KEY_ALIASES.get(slug, slug)


@dataclass(frozen=True)
class Step:
    page: str  # a concept's slug
    say: str = ""  # the teacher's line shown above the page
    settings: dict[str, str | list[str]] = field(default_factory=dict)

    @property
    def page_file(self) -> str:
        return SLUGS[self.page].page_file

    @property
    def label(self) -> str:
        return SLUGS[self.page].label


@dataclass(frozen=True)
class Lesson:
    title: str
    steps: tuple[Step, ...]
    minutes: int | None = None

    def to_dict(self) -> dict:
        out: dict = {"title": self.title}
        if self.minutes is not None:
            out["minutes"] = self.minutes
        out["steps"] = [
            {"page": s.page, "say": s.say, "settings": dict(s.settings)} for s in self.steps
        ]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def _text(value: object, where: str, limit: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise LessonError(f"{where} must be text, not {type(value).__name__}.")
    if required and not value.strip():
        raise LessonError(f"{where} is empty.")
    if len(value) > limit:
        raise LessonError(f"{where} is {len(value)} characters long; at most {limit}.")
    return value.strip()


def _settings(raw: object, page: str, where: str) -> dict[str, str | list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LessonError(f"{where}: 'settings' must be an object of control: value.")
    if len(raw) > MAX_SETTINGS:
        raise LessonError(f"{where} has {len(raw)} settings; at most {MAX_SETTINGS}.")
    prefix = f"{key_prefix(page)}."
    out: dict[str, str | list[str]] = {}
    for key, value in raw.items():
        if key not in SHARED and not key.startswith(prefix):
            raise LessonError(f"{where}: '{key[:60]}' is not a control of page '{page}'.")
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise LessonError(f"{where}: the value of '{key}' must be text or a number.")
            if len(str(v)) > MAX_VALUE:
                raise LessonError(f"{where}: the value of '{key}' is longer than {MAX_VALUE}.")
        out[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return out


def _step(raw: object, number: int) -> Step:
    where = f"Step {number}"
    if not isinstance(raw, dict):
        raise LessonError(f"{where} must be an object with 'page', 'say' and 'settings'.")
    unknown = set(raw) - {"page", "say", "settings"}
    if unknown:
        raise LessonError(f"{where} has unknown fields: {', '.join(sorted(map(str, unknown)))}.")
    page = raw.get("page")
    if not isinstance(page, str) or page not in SLUGS:
        known = ", ".join(sorted(SLUGS))
        raise LessonError(f"{where}: unknown page {str(page)[:60]!r}; pages are: {known}.")
    say = _text(raw.get("say"), f"{where}: 'say'", MAX_SAY)
    return Step(page=page, say=say, settings=_settings(raw.get("settings"), page, where))


def lesson_from_dict(raw: object) -> Lesson:
    """Validate a lesson given as parsed JSON; raises LessonError saying what is wrong."""
    if not isinstance(raw, dict):
        raise LessonError("A lesson is a JSON object with 'title' and 'steps'.")
    title = _text(raw.get("title"), "The title", MAX_TITLE, required=True)
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError("A lesson needs a non-empty list of 'steps'.")
    if len(steps) > MAX_STEPS:
        raise LessonError(f"The lesson has {len(steps)} steps; at most {MAX_STEPS}.")
    minutes = raw.get("minutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 600
    ):
        raise LessonError("'minutes' must be a whole number from 1 to 600.")
    parsed = tuple(_step(s, i + 1) for i, s in enumerate(steps))
    return Lesson(title=title, steps=parsed, minutes=minutes)


def parse_lesson(data: bytes | str) -> Lesson:
    """A lesson from a file's bytes or text."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise LessonError(
                f"The file is {len(data):,} bytes; a lesson is at most {MAX_FILE_BYTES:,}."
            )
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LessonError("The file is not UTF-8 text (a lesson is a JSON file).") from exc
    if len(data) > MAX_FILE_BYTES:
        raise LessonError(f"The lesson is {len(data):,} characters; at most {MAX_FILE_BYTES:,}.")
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LessonError(f"The file is not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    return lesson_from_dict(raw)


def encode_lesson(lesson: Lesson) -> str:
    """The lesson as one URL-safe word (base64url of its compact JSON, no padding)."""
    compact = json.dumps(lesson.to_dict(), ensure_ascii=False, separators=(",", ":"))
    code = base64.urlsafe_b64encode(compact.encode("utf-8")).decode("ascii").rstrip("=")
    if len(code) > MAX_LINK_CHARS:
        raise LessonError(
            f"This lesson is too long for a link ({len(code):,} characters, at most "
            f"{MAX_LINK_CHARS:,}): download it as a file instead, or shorten its lines."
        )
    return code


def decode_lesson(code: str) -> Lesson:
    """A lesson carried by a link (see encode_lesson)."""
    if len(code) > MAX_LINK_CHARS:
        raise LessonError(f"The lesson in this link is longer than {MAX_LINK_CHARS:,} characters.")
    try:
        data = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LessonError("The lesson in this link is damaged (not base64url).") from exc
    return parse_lesson(data)


def shipped_lessons(folder: Path = LESSONS_DIR) -> dict[str, Lesson]:
    """The lessons shipped in data/lessons/, by file name (without .json)."""
    return {p.stem: parse_lesson(p.read_bytes()) for p in sorted(folder.glob("*.json"))}


def shipped_lesson(name: str, folder: Path = LESSONS_DIR) -> Lesson:
    if not NAME.match(name or ""):
        raise LessonError(f"No shipped lesson is called {name[:40]!r}.")
    path = folder / f"{name}.json"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in folder.glob("*.json")))
        raise LessonError(f"No shipped lesson is called {name!r}; there are: {names}.")
    return parse_lesson(path.read_bytes())
