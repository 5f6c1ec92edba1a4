"""Page 21 (RAG): first render, the embedding index build, retrieval and answer time."""

from __future__ import annotations

import time

from bench.common import ROOT, Row, note, seconds


def first_render(page: str) -> tuple[float, float]:
    """Seconds to run the home page, then to switch to `page` (AppTest, models warm)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from apptest_util import open_page
    from streamlit.testing.v1 import AppTest

    open_page(page)  # warm: models loaded, caches filled by the first visit
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    t0 = time.perf_counter()
    at.run()
    home = time.perf_counter() - t0
    t0 = time.perf_counter()
    at.switch_page(page).run()
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message[:200]}")
    return time.perf_counter() - t0, home


def rows() -> list[Row]:
    from core import rag
    from core.runtime.models import load_embedded, load_encoder

    out: list[Row] = []
    note("rag: first render of page 21")
    page, home = first_render("pages/21_rag.py")
    out.append(
        Row(
            "Page 21 (RAG) render, models warm (AppTest)",
            seconds(page),
            f"home page: {seconds(home)}",
            f"{page / home:.1f}x",
        )
    )

    enc, lm = load_encoder(), load_embedded()
    chunks = rag.corpus_chunks(500, 50)
    sample = [c.text for c in chunks[:64]]
    note("rag: MiniLM embedding throughput on 64 chunks of 500 characters")
    t0 = time.perf_counter()
    rag.embed_texts(enc, sample)
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25 = rag.bm25_index([c.text for c in chunks])
    bm25_s = time.perf_counter() - t0
    full = embed_s / len(sample) * len(chunks)
    out.append(
        Row(
            f"RAG index 500/50: MiniLM, {len(sample) / embed_s:.0f} chunks/s, so "
            f"{len(chunks):,} chunks take",
            seconds(full),
            f"BM25 index of all chunks: {seconds(bm25_s)}",
            f"{full / bm25_s:.0f}x",
        )
    )

    emb = rag.embed_texts(enc, [c.text for c in chunks[:256]])
    small = rag.bm25_index([c.text for c in chunks[:256]])
    q = "What does dict.get return for a missing key?"
    qv = rag.embed_texts(enc, [q])[0]
    t0 = time.perf_counter()
    for _ in range(20):
        rag.retrieve(q, small, emb, qv)
    both = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for _ in range(20):
        rag.retrieve(q, small, None, None)
    sparse = (time.perf_counter() - t0) / 20
    out.append(
        Row(
            "RAG query: BM25 + dense + RRF ranking (256-chunk index)",
            f"{both * 1e6:.0f} µs",
            f"BM25 alone: {sparse * 1e6:.0f} µs",
            f"{both / sparse:.1f}x",
        )
    )

    note("rag: answers with and without the top-3 chunks")
    top = [chunks[int(i)].text for i in rag.ranking(rag.bm25_scores(bm25, q))[:3]]
    with_ctx = rag.answer(lm, q, top)
    without = rag.answer(lm, q, [])
    out.append(
        Row(
            f"RAG answer with top-3 chunks ({with_ctx.prompt_tokens} prompt tokens, "
            f"{with_ctx.new_tokens} new)",
            seconds(with_ctx.seconds),
            f"without retrieval ({without.prompt_tokens} tokens): {seconds(without.seconds)}",
            f"{with_ctx.seconds / without.seconds:.1f}x",
        )
    )
    return out
