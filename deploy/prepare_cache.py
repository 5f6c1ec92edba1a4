"""Build the read-only artefacts that every replica shares, once, before any replica starts.

    python deploy/prepare_cache.py FOLDER [--rag default|all] [--copy-from FOLDER]

FOLDER becomes what the replicas get as LLM_EXPLORER_CACHE: the converted SmolLM2
(core.runtime.models.load_embedded) and the RAG page's MiniLM index (core.rag.index_file) for
the page's default chunking, or for all fifteen with `--rag all` (about 10 min on 2 cores).
A replica that finds both valid loads them and writes nothing; the folder is then made
read-only, so no replica can rebuild or damage it. Run again, it checks what is there and only
builds what is missing. The Dockerfile and deploy/cluster.sh both run this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The RAG page's chunk sizes and overlaps (pages/21_rag.py) and its default chunking.
RAG_SIZES = (300, 500, 800)
RAG_OVERLAPS = (0, 25, 50, 80, 100)
RAG_DEFAULT = (500, 50)


def set_writable(folder: Path, writable: bool) -> None:
    """Owner write bits on (to build), or everyone's off and read bits on for all (to share:
    the conversion's folder is created private, and the image's app user is not its owner)."""
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        if writable:
            path.chmod(mode | stat.S_IWUSR)
        else:
            readable = 0o555 if path.is_dir() else 0o444
            path.chmod((mode & ~0o222) | readable)


def copy_model(source_root: Path, target_root: Path) -> bool:
    """Copy an already converted model (a valid one only), instead of converting again."""
    from core.runtime import models

    source, target = models.converted_dir(source_root), models.converted_dir(target_root)
    if source_root == target_root or models.cache_state(source) != "ok":
        return False
    tmp = target_root / f".copy-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    set_writable(tmp, True)  # the source may itself be a read-only cache
    os.replace(tmp, target)
    return models.cache_state(target) == "ok"


def prepare_model(copy_from: Path | None) -> str:
    from core.runtime import models

    folder = models.converted_dir()
    if models.cache_state(folder) == "ok":
        return f"model: already converted in {folder}"
    if copy_from is not None and copy_model(copy_from, models.cache_root()):
        return f"model: copied from {models.converted_dir(copy_from)} (checked)"
    t0 = time.perf_counter()
    lm = models.load_embedded(status=lambda text: print(" ", text, flush=True))
    if lm.note or models.cache_state(folder) != "ok":
        raise SystemExit(f"the model could not be converted into {folder}: {lm.note}")
    return f"model: converted into {folder} in {time.perf_counter() - t0:.0f} s"


def prepare_rag(chunkings: list[tuple[int, int]]) -> list[str]:
    from core import rag
    from core.runtime.models import load_encoder

    done = []
    for size, overlap in chunkings:
        if rag.load_index(size, overlap) is not None:
            done.append(f"rag {size}/{overlap}: already built")
            continue
        t0 = time.perf_counter()
        rag.build_index(load_encoder(), size, overlap)
        if rag.load_index(size, overlap) is None:
            raise SystemExit(f"the RAG index {rag.index_file(size, overlap)} was not saved")
        done.append(f"rag {size}/{overlap}: built in {time.perf_counter() - t0:.0f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rag", choices=("default", "all", "none"), default="default")
    parser.add_argument(
        "--copy-from", type=Path, help="a cache folder whose converted model may be copied"
    )
    args = parser.parse_args(argv)
    folder = args.folder.expanduser().resolve()
    os.environ["LLM_EXPLORER_CACHE"] = str(folder)  # before core reads it
    folder.mkdir(parents=True, exist_ok=True)
    set_writable(folder, True)
    try:
        lines = [prepare_model(args.copy_from)]
        chunkings = {
            "default": [RAG_DEFAULT],
            "all": [(s, o) for s in RAG_SIZES for o in RAG_OVERLAPS],
            "none": [],
        }[args.rag]
        lines += prepare_rag(chunkings)
    finally:
        set_writable(folder, False)
    for line in lines:
        print(" ", line)
    print(f"  {folder} is ready and read-only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
