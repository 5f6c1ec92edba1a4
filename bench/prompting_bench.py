"""Page 23: first render, and one measured condition with and without the shared-prefix cache."""

from __future__ import annotations

import time

from bench.common import ROOT, Row, note, seconds


def first_render(page: str) -> float:
    """Seconds for AppTest to open `page` through app.py (model already loaded in-process)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from apptest_util import open_page

    open_page(page)  # warm: model load and imports are not the page's first render
    t = time.perf_counter()
    at = open_page(page)
    took = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception}")
    return took


def rows() -> list[Row]:
    from core import prompting as P
    from core.runtime.models import load_embedded

    lm = load_embedded()
    test, pool = P.load_reviews()
    cond = P.Condition("few-shot", k=3, seed=0)
    note("page 23: few-shot k=3 over 30 reviews, with and without the shared-prefix KV cache")
    timings = {}
    for reuse in (True, False):
        t = time.perf_counter()
        res = P.measure_condition(lm, cond, test, pool, reuse_prefix=reuse)
        timings[reuse] = (time.perf_counter() - t, res.computed_tokens)
    (with_s, with_tok), (without_s, without_tok) = timings[True], timings[False]
    out = [
        Row(
            "Page 23: few-shot k=3 condition, 30 reviews (shared prefix cached, batches of "
            f"{P.READ_BATCH})",
            f"{seconds(with_s)}, {with_tok:,} tokens computed",
            f"prefix recomputed per review: {seconds(without_s)}, {without_tok:,} tokens",
            f"{without_s / with_s:.2f}x (above 1: the cache saves time)",
        ),
    ]
    render = first_render("pages/23_prompting.py")
    out.append(Row("Page 23: first render (AppTest, model warm)", seconds(render)))
    return out
