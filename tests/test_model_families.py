"""Every page, with a tiny random model of every family the picker can load: each page works or
shows the app's own "needs a decoder model" warning, never a traceback."""

from __future__ import annotations

import pytest
from apptest_util import chart_data, open_page
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


BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _dot(at) -> str:
    return at.get("graphviz_chart")[0].proto.spec


def test_pages_work_on_a_gpt2_architecture(tiny_hub):
    at = open_page(BLOCK)
    at.session_state["shared.model"] = "tiny-test/gpt2"
    at.run()
    assert not at.exception, at.exception
    assert "ln_1 (LayerNorm)" in _dot(at) and "attn (GPT2Attention)" in _dot(at)
    assert at.slider(key="block.layer").max == 1
    assert float(_metric(at, "rebuilt vs model")) < 1e-4
    at.switch_page(FULL).run()
    assert not at.exception, at.exception
    assert sorted(chart_data(at, "guess")["layer"].unique()) == [0, 1, 2]
    sizes = chart_data(at, "billions")
    assert len(sizes[sizes["loaded"]]) == 1
    at.switch_page(OBJ).run()
    assert not at.exception, at.exception
    assert chart_data(at, "bits")["bits"].iloc[1:].notna().all()
