"""Page 13: the data pipeline against references (datasketch, exact Jaccard, brute force, the
LM's own loss) and the page driven through AppTest."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from apptest_util import open_page

from core import pretraining_data as dp

BAD_INPUTS = [
    "   \n\t ",
    "x" * 20_000,
    "I love 🍕 👩🏽‍💻",
    "我喜欢机器学习。",
    "<script>alert('x')</script><b>bold</b>",
    "$x^2$ and $$\\frac{a}{b}$$ **b**",
    "<|im_start|>user\nhi<|im_end|>",
]


@lru_cache(maxsize=1)
def _run() -> tuple[tuple[dp.Doc, ...], dp.PipelineResult, list[set[str]], np.ndarray]:
    docs = dp.sample_corpus()
    t = dp.Thresholds()
    sets = [dp.shingles(d.text, t.shingle) for d in docs]
    sig = dp.minhash_signatures(sets, t.num_perm)
    return docs, dp.run_pipeline(docs, t, sig), sets, sig


def test_sample_is_deterministic_and_copies_follow_their_original():
    docs = dp.sample_corpus()
    assert docs == dp.sample_corpus()
    assert len({d.id for d in docs}) == len(docs)
    pos = {d.id: i for i, d in enumerate(docs)}
    for d in docs:
        if d.kind in ("exact_dup", "near_dup"):
            assert pos[d.origin] < pos[d.id]
        if d.kind == "exact_dup":
            assert d.text == docs[pos[d.origin]].text
    assert {d.kind for d in docs} == set(dp.KINDS)


def test_exact_duplicates_all_removed():
    docs, result, _, _ = _run()
    kept = set(result.kept[-1])
    texts = [dp.normalise(d.text) for d in docs if d.id in kept]
    assert len(texts) == len(set(texts))
    assert not any(d.id in kept for d in docs if d.kind == "exact_dup")


def test_minhash_equals_datasketch_bit_for_bit():
    from datasketch import MinHash

    docs = dp.sample_corpus()[:20]
    sets = [dp.shingles(d.text, 5) for d in docs]
    ours = dp.minhash_signatures(sets, 64, seed=1)
    for s, row in zip(sets, ours, strict=True):
        m = MinHash(num_perm=64, seed=1)
        m.update_batch([x.encode("utf-8") for x in s])
        assert np.array_equal(m.hashvalues.astype(np.uint32), row)


def test_minhash_estimates_track_exact_jaccard():
    docs, _, sets, sig = _run()
    check = dp.minhash_check(docs, dp.Thresholds().shingle, sig)
    assert check.mean_abs_error < 0.05
    assert np.corrcoef(check.true, check.estimated)[0, 1] > 0.95
    near = np.array(check.pair) == "near-duplicate pair"
    assert check.true[near].mean() > 0.6 > check.true[~near].mean()


def test_lsh_candidates_equal_brute_force_band_matches():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 3, size=(40, 12)).astype(np.uint32)  # few values: many collisions
    bands, rows = 4, 3
    brute = {
        (i, j)
        for i in range(40)
        for j in range(i + 1, 40)
        if any(
            np.array_equal(sig[i, b * rows : (b + 1) * rows], sig[j, b * rows : (b + 1) * rows])
            for b in range(bands)
        )
    }
    assert dp.lsh_candidates(sig, bands) == brute
    assert math.isclose(dp.candidate_probability(0.5, 4, 3), 1 - (1 - 0.125) ** 4)


def test_each_filter_catches_the_junk_it_targets():
    docs, result, _, _ = _run()
    rows = {r.kind: r for r in dp.recall_table(docs, result)}
    for kind in ("exact_dup", "near_dup", "boilerplate", "spam", "foreign", "pii"):
        assert rows[kind].recall >= 0.9, rows[kind]
    assert rows["exact_dup"].dropped_any == rows["exact_dup"].injected
    assert rows["clean"].dropped_any / rows["clean"].injected < 0.25


def test_stages_are_ordered_and_reasons_match_thresholds():
    docs, result, _, _ = _run()
    sizes = [len(k) for k in result.kept]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == len(docs)
    assert len(result.dropped) == sizes[0] - sizes[-1]
    strict = dp.run_pipeline(docs, dp.Thresholds(min_words=40), _run()[3])
    assert len(strict.kept[2]) < len(result.kept[2])


def test_pii_masking_removes_every_injected_address_and_number():
    docs, result, _, _ = _run()
    masked = {i: text for i, text, _ in result.masked}
    for d in docs:
        if d.kind == "pii":
            assert all(p not in masked[d.id] for p in d.pii)
            assert "[EMAIL]" in masked[d.id] and "[PHONE]" in masked[d.id]
    assert dp.mask_pii("version 3.11.7 of 2 3 items")[1] == 0


def test_language_heuristic():
    foreign = [d for d in dp.sample_corpus() if d.kind == "foreign"]
    assert all(dp.language_reason(d.text, dp.Thresholds()) for d in foreign)
    assert dp.language_of("The list is sorted in place and the method returns None.")[0] == "en"
    assert dp.language_of("Die Liste wird sortiert und die Methode gibt nichts zurück.")[0] == "de"
    assert dp.language_of("列表是用方括号写成的可变元素序列。")[0] == "cjk"


def test_mixture_plan_splits_the_budget_and_counts_epochs():
    rows = dp.mixture_plan({"a": 1000, "b": 500, "c": 0}, {"a": 3, "b": 1, "c": 0}, 4000)
    assert math.isclose(sum(r.tokens for r in rows), 4000)
    a, b, c = rows
    assert math.isclose(a.tokens, 3000) and math.isclose(a.epochs, 3.0)
    assert math.isclose(b.epochs, 2.0) and c.epochs == 0.0


def test_char_ngram_is_a_distribution():
    model = dp.train_char_ngram(["the cat sat on the mat", "the dog sat"], order=3)
    for ctx in ("th", "zz", ""):
        total = sum(model.prob(ctx, c) for c in model.vocab) + model.prob(ctx, "Ω")
        assert math.isclose(total, 1.0, rel_tol=1e-9)
    assert dp.char_perplexity(model, "the cat") < dp.char_perplexity(model, "qxzv!")


def test_lm_perplexity_equals_the_models_own_loss(lm):
    import torch

    text = "The list is sorted in place and the method returns None."
    [(prefix, ppl)] = dp.lm_prefix_perplexities(lm, [text], 32, lambda *a, **k: None)
    ids = lm.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :32]
    with torch.inference_mode():
        loss = lm.model(input_ids=ids, labels=ids).loss
    assert math.isclose(ppl, math.exp(float(loss)), rel_tol=1e-4)
    assert prefix == lm.tokenizer.decode(ids[0])


# ---- the page --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page():
    return open_page("pages/13_pretraining_data.py")


def _recall(at) -> dict:
    df = at.dataframe[0].value
    return dict(zip(df["injected kind"], df["caught"], strict=True))


def test_page_renders_funnel_and_recall(page):
    at = page
    assert not at.exception
    assert _recall(at)["exact_dup"] >= 110
    specs = [c for c in at.get("arrow_vega_lite_chart")] + [c for c in at.get("vega_lite_chart")]
    assert len(specs) >= 3


def test_thresholds_change_what_is_dropped(page):
    at = page
    before = _recall(at)
    at.slider(key="pretraining_data.jaccard").set_value(1.0).run()
    assert not at.exception
    assert _recall(at)["near_dup"] < before["near_dup"]  # only identical signatures now
    at.slider(key="pretraining_data.jaccard").set_value(0.7).run()
    at.slider(key="pretraining_data.english").set_value(0.0).run()
    assert _recall(at)["foreign"] < before["foreign"]  # a zero threshold lets them all in
    at.slider(key="pretraining_data.english").set_value(0.5).run()
    at.select_slider(key="pretraining_data.perm").set_value(16).run()
    assert not at.exception
    assert at.select_slider(key="pretraining_data.bands").value <= 16


def test_perplexity_job_scores_both_models(page):
    at = page
    at.slider(key="pretraining_data.ppl_docs").set_value(2).run()
    start = [b for b in at.button if b.label.startswith("Score 10 documents")]
    assert start
    start[0].click().run()
    assert not at.exception
    medians = [df.value for df in at.dataframe if "character n-gram" in df.value.columns]
    assert medians and set(medians[0].index) >= {"clean", "boilerplate"}
    assert any("Median perplexity of boilerplate" in m.value for m in at.markdown)


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_own_text_survives_bad_input(page, text):
    at = page
    at.text_area(key="pretraining_data.own").set_value(text).run()
    assert not at.exception
    if not text.strip():
        assert any("Type or paste" in i.value for i in at.info)


def _funnel(at) -> dict:
    from apptest_util import chart_frames

    for dfs in chart_frames(at):
        for df in dfs:
            if {"stage", "measure", "kept"} <= set(df.columns):
                docs = df[df["measure"] == "documents"]
                return dict(zip(docs["stage"], docs["kept"], strict=True))
    raise AssertionError("no funnel chart")


def test_min_words_drops_more_in_the_funnel_and_the_table_filters(page):
    at = page
    before = _funnel(at)
    at.slider(key="pretraining_data.min_words").set_value(40).run()
    after = _funnel(at)
    assert after["raw"] == before["raw"] and after["quality"] < before["quality"]
    table = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    assert len(table) == after["raw"] - after["near dedup"]
    at.multiselect(key="pretraining_data.drop_stage").set_value(["exact dedup"]).run()
    table = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    assert set(table["stage"]) == {"exact dedup"}
    at.slider(key="pretraining_data.min_words").set_value(8).run()


def test_mixture_weights_move_tokens_and_epochs(page):
    at = page

    def mix():
        return next(df.value for df in at.dataframe if "epochs" in df.value.columns)

    web = mix().set_index("source").loc["web crawl"]
    at.slider(key="pretraining_data.w.web crawl").set_value(0).run()
    assert mix().set_index("source").loc["web crawl", "epochs"] == 0
    at.slider(key="pretraining_data.w.web crawl").set_value(30).run()
    at.select_slider(key="pretraining_data.budget").set_value(1_000_000).run()
    doubled = mix().set_index("source").loc["web crawl"]
    assert abs(doubled["epochs"] - 2 * web["epochs"]) < 1e-9
    for source in ("docs prose", "docs code", "web crawl"):
        at.slider(key=f"pretraining_data.w.{source}").set_value(0).run()
    assert any("All weights are 0" in i.value for i in at.info)
    assert not at.exception


@pytest.mark.parametrize(
    "text",
    [
        "🍕 🚀 👩🏽‍💻 🎉 🍕 🚀",
        "\x00" * 40,
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor",
    ],
)
def test_text_without_a_stop_word_shows_no_english_and_fails_the_language_filter(text):
    """No stop word of any language: no evidence of English (it read "English share 100 %"
    and passed)."""
    lang, share = dp.language_of(text)
    assert (lang, share) == ("unknown", 0.0)
    assert dp.language_reason(text, dp.Thresholds()) is not None
    assert dp.language_reason(text, dp.Thresholds(min_english=0.0)) is None  # filter off


def test_caption_and_lsh_sentence_are_computed_from_the_run():
    from components.pretraining_data import collision_text, lost_text

    docs, result, _, _ = _run()
    by_id = {d.id: d for d in docs}
    lost = [(by_id[x.doc_id].source, x.stage) for x in result.dropped]
    lost = [
        (src, stage)
        for (src, stage), x in zip(lost, result.dropped)
        if by_id[x.doc_id].kind == "clean"
    ]
    code_dups = sum(src == "docs code" and stage.endswith("dedup") for src, stage in lost)
    code_all = sum(src == "docs code" for src, stage in lost)
    text = lost_text(docs, result)
    assert f"{code_all} code listings or grammar rules ({code_all - code_dups} by rules" in text
    assert f", {code_dups} as near or exact duplicates" in text
    t = dp.Thresholds()
    rows = t.num_perm // t.bands
    sentence = collision_text(t.bands, rows, t.jaccard)
    for s in (0.5, 0.8, 0.9):
        assert f"{1 - (1 - s**rows) ** t.bands:.0%} at {s:.2f}" in sentence
    assert "almost always" not in sentence
