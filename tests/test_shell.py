"""The frame: registry, home page, sidebar, shared state, import direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from apptest_util import APP, open_page
from streamlit.testing.v1 import AppTest

from components.frame import page_number
from core.concepts import CONCEPTS, SECTIONS, available_concepts, concept

ROOT = Path(__file__).resolve().parent.parent


def test_registry_numbers_concepts_one_to_n_in_known_sections():
    assert [c.number for c in CONCEPTS] == list(range(1, len(CONCEPTS) + 1))
    assert {c.section for c in CONCEPTS} <= set(SECTIONS)
    assert len({c.slug for c in CONCEPTS}) == len(CONCEPTS)
    assert len({c.page_file for c in CONCEPTS}) == len(CONCEPTS)


def test_a_page_finds_its_concept_from_its_file_name():
    for c in CONCEPTS:
        assert page_number(c.page_file) == c.number
    with pytest.raises(ValueError):
        page_number("pages/neuron.py")


def test_every_page_file_is_in_the_registry():
    registered = {c.page_file for c in CONCEPTS}
    for f in (ROOT / "pages").glob("*.py"):
        assert f"pages/{f.name}" in registered, f"{f.name} is not in core/concepts.py"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit_or_components():
    for f in (ROOT / "core").rglob("*.py"):
        bad = _imports(f) & {"streamlit", "components", "pages"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_components_never_import_pages():
    for f in (ROOT / "components").rglob("*.py"):
        assert "pages" not in _imports(f), f


PAGE_LINES_MAX = 150


def _page_keys(tree: ast.Module) -> list[str]:
    """Every `key=` given as a plain string or f-string in a page (an f-string by its text)."""
    keys = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg != "key":
                    continue
                if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    keys.append(kw.value.value)
                elif isinstance(kw.value, ast.JoinedStr):
                    keys.append(ast.unparse(kw.value))
    return keys


@pytest.mark.parametrize("page", [c.page_file for c in CONCEPTS], ids=lambda p: Path(p).stem)
def test_a_page_is_a_short_flat_script_with_a_docstring_and_its_own_keys(page):
    """The page rule: at most 150 lines (longer sections live in components/<slug>.py), a module
    docstring "NN Title: ...", `page_frame()` without a number (it reads the file name), its
    explanation in one `with intro():`, and every widget key literal namespaced by the page's
    slug ("<slug>.<name>")."""
    path = ROOT / page
    source = path.read_text()
    tree = ast.parse(source)
    c = concept(page_number(page))
    lines = len(source.splitlines())
    assert lines <= PAGE_LINES_MAX, f"{page} has {lines} lines: move a section into components"
    doc = ast.get_docstring(tree)
    assert doc and doc.startswith(f"{c.number:02d} {c.title}:"), f"{page}: docstring {doc!r}"
    frames = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "page_frame"
    ]
    assert len(frames) == 1 and not frames[0].args and not frames[0].keywords, page
    # the opening explanation in one top-level `with intro():` (folded in the presenter view)
    intros = [
        n
        for n in tree.body
        if isinstance(n, ast.With)
        and any(ast.unparse(item.context_expr) == "intro()" for item in n.items)
    ]
    assert len(intros) == 1, f"{page}: the explanation is not in one top-level `with intro():`"
    for key in _page_keys(tree):
        assert key.startswith((f"{c.slug}.", f"f'{c.slug}.", f'f"{c.slug}.')), (
            f"{page}: widget key {key!r} does not start with '{c.slug}.'"
        )


def test_home_page_lists_exactly_the_pages_that_exist():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    for c in CONCEPTS:
        assert (c.title in text) == c.exists(), c.title
    assert len(available_concepts()) >= 2


def test_shared_prompt_survives_a_page_switch():
    at = open_page("pages/06_tokenization.py")
    at.sidebar.text_area(key="sidebar.prompt").set_value("Shared across pages ✓").run()
    at.switch_page("pages/19_decoding.py").run()
    assert not at.exception
    assert at.sidebar.text_area(key="sidebar.prompt").value == "Shared across pages ✓"
    assert at.session_state["shared.prompt"] == "Shared across pages ✓"


def test_unavailable_hub_model_falls_back_with_a_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = open_page("pages/19_decoding.py")
    at.sidebar.selectbox(key="sidebar.model").set_value("distilgpt2").run()
    assert not at.exception
    assert at.session_state["shared.model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert any("distilgpt2" in w.value for w in at.sidebar.warning)


def test_sidebar_shows_the_model_and_shared_prompt_before_the_page_list():
    # On a projector (1280x720) the 25 page links fill the first screen: the prompt must come
    # first to be seen without scrolling the sidebar.
    at = AppTest.from_file(APP, default_timeout=240).run()
    kinds = [getattr(k, "type", "") for k in at.sidebar.children.values()]
    assert kinds.index("text_area") < kinds.index("caption")  # before the first section
    assert kinds.index("selectbox") < kinds.index("caption")
    assert kinds.count("page_link") >= 2


def test_no_merge_conflict_markers_are_left_in_the_tree():
    """A merge once left `<<<<<<<` in the Makefile: `make test` then stopped at its line 8."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    left = []
    for name in files:
        path = root / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")):
                left.append(f"{name}:{n}")
    assert not left, left
