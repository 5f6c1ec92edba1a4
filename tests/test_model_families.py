"""Every page, with a tiny random model of every family the picker can load: each page works or
shows the app's own "needs a decoder model" warning, never a traceback.

Which pages warn is not listed here: a page declares what it takes apart in its own calls
(`model_page("block")`, `require_anatomy(lm, "mlp")`), and the page must warn exactly for the
families whose anatomy lacks one of those needs (`core.inspect.anatomy.supports`). A new page
is picked up by itself: `pytest tests/test_model_families.py -k <slug>`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from apptest_util import chart_data, open_page
from apptest_util import metric as _metric
from tiny_models import FAMILIES

from core.concepts import available_concepts
from core.inspect.anatomy import supports

ROOT = Path(__file__).resolve().parent.parent
WARNING = "needs a decoder model"
PAGES = [c.page_file for c in available_concepts()]


def page_needs(page: str) -> tuple[str, ...]:
    """The needs a page passes to `model_page(...)` or `require_anatomy(lm, ...)`."""
    needs: list[str] = []
    for node in ast.walk(ast.parse((ROOT / page).read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("model_page", "require_anatomy"):
                needs += [
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
    return tuple(needs)


def test_page_needs_are_read_from_the_pages():
    assert page_needs("pages/10_block.py") == ("block",)
    assert page_needs("pages/01_neuron.py") == ("mlp",)
    assert page_needs("pages/08_attention.py") == ()


def _warnings(at) -> str:
    return " ".join(w.value for w in at.warning)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).stem.split("_", 1)[1])
def test_every_page_works_or_warns_with_every_family(tiny_hub, page):
    needs = page_needs(page)
    at = open_page(page)
    at.session_state["shared.prompt"] = "The cat sat on the mat. The cat sat"
    for family in FAMILIES:
        model_id = f"tiny-test/{family}"
        at.session_state["shared.model"] = model_id
        at.run()
        assert not at.exception, (page, family, at.exception)
        assert at.session_state["shared.model"] == model_id, page
        expected = bool(needs) and not supports(tiny_hub[model_id].model, *needs)
        assert (WARNING in _warnings(at)) == expected, (page, family, needs, _warnings(at))


BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"


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
