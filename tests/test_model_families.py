"""Every page, with a tiny random model of every family the picker can load: each page works or
shows the app's own "needs a decoder model" warning, never a traceback."""

from __future__ import annotations

import pytest
from apptest_util import open_page
from tiny_models import FAMILIES

from core.concepts import available_concepts

WARNING = "needs a decoder model"
# pages that take a model apart, and the families whose layout they cannot read
TAKES_APART = {
    "01": ("bert", "bloom", "opt"),
    "03": ("bert", "bloom", "opt"),
    "10": ("bert", "gpt_neox", "bloom", "opt"),
    "11": ("bert",),
    "16": ("bert",),  # the LoRA part adapts the blocks' matrices
}
PAGES = [c.page_file for c in available_concepts()]


def _warnings(at) -> str:
    return " ".join(w.value for w in at.warning)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_page_works_or_warns_with_every_family(tiny_hub, family):
    at = open_page(PAGES[0])
    at.session_state["shared.prompt"] = "The cat sat on the mat. The cat sat"
    at.session_state["shared.model"] = f"tiny-test/{family}"
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, family, at.exception)
        assert at.session_state["shared.model"] == f"tiny-test/{family}", page
        number = page.split("/")[1][:2]
        warned = WARNING in _warnings(at)
        assert warned == (family in TAKES_APART.get(number, ())), (page, family, _warnings(at))
