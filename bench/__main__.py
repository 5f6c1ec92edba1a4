"""Run every benchmark, print one table, write bench/results.md."""

from __future__ import annotations

import asyncio
import sys
import time

from bench.common import ROOT, Row, note, table, where, write_results

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def page_parts() -> list[tuple[str, object]]:
    """Every `bench/*_bench.py` with a `rows()` function: one per concept's main job."""
    import importlib

    parts = []
    for path in sorted((ROOT / "bench").glob("*_bench.py")):
        if path.stem in ("app_bench", "model_bench"):
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        if hasattr(module, "rows"):
            parts.append((path.stem.removesuffix("_bench"), module.rows))
    return parts


def main() -> None:
    from bench.app_bench import run_app_bench
    from bench.model_bench import generation, model_load

    start = time.perf_counter()
    header = where()
    note(header)
    rows: list[Row] = []
    notes: list[str] = []
    for name, part in (("model load", model_load), ("generation", generation), *page_parts()):
        try:
            rows += part()
        except Exception as exc:  # one broken part must not hide the others' figures
            notes.append(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
    try:
        app_rows, app_notes = asyncio.run(run_app_bench())
        rows += app_rows
        notes += app_notes
    except Exception as exc:
        notes.append(f"browser part failed: {type(exc).__name__}: {str(exc)[:300]}")
    minutes = (time.perf_counter() - start) / 60
    write_results(rows, header, notes, minutes)
    print()
    print(table(rows))
    for n in notes:
        print(f"- {n}")
    print(f"\n(written to {ROOT / 'bench' / 'results.md'}; {minutes:.1f} min)")


if __name__ == "__main__":
    main()
