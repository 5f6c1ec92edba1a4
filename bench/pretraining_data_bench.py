"""Page 13: the cheap pipeline, numpy MinHash against datasketch, and the perplexity job."""

from __future__ import annotations

import time

from bench.common import Row, note, page_first_render, seconds


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def rows() -> list[Row]:
    from datasketch import MinHash

    from core import pretraining_data as dp
    from core.runtime.models import load_embedded

    t = dp.PIPELINE.step("near dedup")
    c0 = time.process_time()
    docs = dp.sample_corpus()
    sets = [dp.shingles(d.text, t.shingle) for d in docs]
    dp.run_pipeline(docs, dp.PIPELINE, dp.minhash_signatures(sets, t.num_perm))
    cpu = time.process_time() - c0  # one thread: CPU seconds = wall time on an idle core
    sets, s_shingles = _timed(lambda: [dp.shingles(d.text, t.shingle) for d in docs])
    sig, s_ours = _timed(dp.minhash_signatures, sets, t.num_perm)

    def with_datasketch():
        for s in sets:
            m = MinHash(num_perm=t.num_perm, seed=1)
            m.update_batch([x.encode("utf-8") for x in s])

    _, s_ds = _timed(with_datasketch)
    stats, s_stats = _timed(lambda: [dp.doc_stats(d.text) for d in docs])
    result, s_pipe = _timed(dp.run_pipeline, docs, dp.PIPELINE, sig, stats)
    _, s_exact = _timed(dp.exact_duplicates, [d.text for d in docs])
    total = s_shingles + s_ours + s_stats + s_pipe
    note(f"pipeline kept {len(result.kept[-1])} of {len(docs)} documents")
    out = [
        Row(
            f"p13 MinHash signatures, {len(docs)} docs x {t.num_perm} perms (numpy)",
            seconds(s_ours),
            f"datasketch {seconds(s_ds)}",
            f"{s_ds / s_ours:.1f}x faster",
        ),
        Row(
            f"p13 whole cheap pipeline from scratch ({len(docs)} docs)",
            f"{seconds(total)} wall, {cpu:.2f} CPU-s",
            f"exact dedup alone {seconds(s_exact)}",
            f"{total / s_exact:.0f}x",
            target="< 2 CPU-s",
            met="yes" if cpu < 2 else f"NO ({cpu:.2f} CPU-s)",
        ),
        Row(
            "p13 pipeline rerun after a threshold move (signatures, stats cached)",
            seconds(s_pipe),
            f"signatures {seconds(s_ours)}",
            f"{s_pipe / s_ours:.2f}x",
        ),
    ]
    lm = load_embedded()
    sample = dp.perplexity_sample(docs, 4)
    _, s_lm = _timed(dp.score_perplexities, lm, lm.model_id, docs, sample, lambda *a, **k: None)
    ngram, s_train = _timed(dp.train_char_ngram, [d.text for d in docs if d.kind == "clean"][:600])
    _, s_ng = _timed(lambda: [dp.char_perplexity(ngram, d.text[:150]) for d in sample])
    out.append(
        Row(
            f"p13 perplexity job: {len(sample)} docs x 32 tokens, both models",
            seconds(s_lm),
            f"n-gram alone {seconds(s_train + s_ng)}",
            f"{s_lm / len(sample):.2f} s/doc (page estimates 0.12)",
        )
    )
    cold, warm = page_first_render("pages/13_pretraining_data.py")
    out.append(
        Row(
            "p13 first render (AppTest, page caches cold, models loaded)",
            f"{cold:.2f} s",
            f"warm rerender {warm:.2f} s",
            f"{cold / warm:.1f}x",
        )
    )
    return out
