"""The shipped corpus snapshot is complete and split into paragraphs the pages can use."""

from __future__ import annotations

from core.shared.corpus import pydoc_paragraphs, pydoc_topics


def test_snapshot_has_the_python_documentation_topics():
    topics = pydoc_topics()
    assert len(topics) >= 70
    assert 'The "assert" statement' in topics["assert"]
    assert sum(len(v) for v in topics.values()) > 400_000


def test_paragraphs_are_blank_line_blocks_of_the_topics():
    paras = pydoc_paragraphs(min_chars=80)
    assert len(paras) > 1000
    topics = pydoc_topics()
    for topic, block in paras[::50]:
        assert len(block) >= 80
        assert block in topics[topic]
