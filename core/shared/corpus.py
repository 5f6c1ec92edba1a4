"""The shipped text corpus: Python's own documentation topics (`data/pydoc_topics.json`).

`pydoc_data.topics` is in every CPython, but its text differs between versions, so the pages
read a snapshot (CPython 3.11.7, Python Software Foundation License) and get the same
documents, chunks and numbers everywhere.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"
PYDOC_FILE = DATA / "pydoc_topics.json"


@lru_cache(maxsize=1)  # a parsed data file: a per-process constant
def pydoc_topics() -> dict[str, str]:
    """Topic name -> its documentation text, in name order."""
    return dict(json.loads(PYDOC_FILE.read_text(encoding="utf-8"))["topics"])


def corpus_source() -> str:
    meta = json.loads(PYDOC_FILE.read_text(encoding="utf-8"))
    return f"{meta['source']}; {meta['licence']}"


def pydoc_paragraphs(min_chars: int = 80) -> tuple[tuple[str, str], ...]:
    """(topic, paragraph) pairs: blank-line separated blocks of at least `min_chars` characters."""
    out = []
    for topic, text in pydoc_topics().items():
        for block in re.split(r"\n\s*\n", text):
            block = block.strip()
            if len(block) >= min_chars:
                out.append((topic, block))
    return tuple(out)
