"""AppTest tests of pages 07, 08 and 09 on the embedded model: drive the controls and check that
the visuals change the way the concept says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from apptest_util import all_chart_data, chart_specs, open_page


def _heatmap(at):
    return all_chart_data(at, "query", "key", "weight")[0]


def _metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.fixture(scope="module")
def attention_page():
    at = open_page("pages/08_attention.py")
    assert not at.exception, at.exception
    return at


def _check_causal(df):
    assert (df["key"] <= df["query"]).all()
    np.testing.assert_allclose(df.groupby("query")["weight"].sum(), 1.0, atol=3e-3)


def test_attention_layer_and_head_pickers_redraw(attention_page):
    at = attention_page
    first = _heatmap(at)
    _check_causal(first)
    at.slider(key="attention.layer").set_value(5).run()
    assert not at.exception
    moved = _heatmap(at)
    _check_causal(moved)
    assert not np.allclose(first["weight"], moved["weight"])
    assert float(_metric(at, "max |ours")) < 1e-3  # the recomputation matches the model
    at.selectbox(key="attention.head").set_value(4).run()
    other = _heatmap(at)
    assert not np.allclose(other["weight"], moved["weight"])
    assert float(_metric(at, "max |ours")) < 1e-3
    assert _metric(at, "key/value head") == str(4 // 3)  # SmolLM2: 9 query, 3 kv heads
    steps = all_chart_data(at, "panel", "shade")  # one chart per stage, so each fits
    assert len(steps) == 6 and len({df["panel"].iloc[0] for df in steps}) == 6


def test_attention_encoder_view_is_bidirectional(attention_page):
    at = attention_page
    maps = all_chart_data(at, "query", "key", "weight")
    assert len(maps) == 2
    encoder = maps[1]
    assert (encoder["key"] > encoder["query"]).any()  # MiniLM sees the future
    at.selectbox(key="attention.enc_layer").set_value(3).run()
    assert not at.exception
    assert not np.allclose(
        all_chart_data(at, "query", "key", "weight")[1]["weight"], encoder["weight"]
    )


@pytest.mark.parametrize(
    "prompt, expect",
    [
        ("   ", "empty"),
        ("<script>alert(1)</script> $x$ 😀 汉字 שלום \u200b " * 400, "first 64"),
    ],
)
def test_attention_bad_prompts_are_handled(attention_page, prompt, expect):
    at = attention_page
    at.session_state["shared.prompt"] = prompt
    at.run()
    assert not at.exception, at.exception
    assert any(expect in m.value for m in at.info)
    _check_causal(_heatmap(at))
    at.session_state["shared.prompt"] = "The quick brown fox jumps over the lazy dog."
    at.run()


def test_multi_head_layer_slider_and_switch_off():
    at = open_page("pages/09_multi_head.py")
    assert not at.exception, at.exception
    heads = pd.concat(all_chart_data(at, "head", "query", "key", "weight"))  # one chart a head
    assert heads["head"].nunique() == 9
    assert any("head 0:" in h for h in heads["head"].unique())
    at.slider(key="multi_head.layer").set_value(10).run()
    moved = pd.concat(all_chart_data(at, "head", "query", "key", "weight"))
    assert not np.allclose(moved["weight"], heads["weight"])
    assert not at.metric  # nothing switched off yet
    at.multiselect(key="multi_head.off").set_value([0, 1, 2]).run()
    assert not at.exception, at.exception
    kl = float(_metric(at, "KL").split()[0])
    assert kl > 0
    bars = all_chart_data(at, "token", "probability", "heads")[0]
    assert bars["heads"].nunique() == 2
    np.testing.assert_array_less(bars["probability"], 1.0 + 1e-9)


def test_embeddings_neighbours_sentences_and_bad_words(lm):
    from core.embeddings import embedding_matrix, nearest_neighbours, unit_rows, word_ids

    at = open_page("pages/07_embeddings.py")
    assert not at.exception, at.exception
    # PCA at once; t-SNE (numpy) and UMAP (umap-learn, in the helper process) from one button;
    # the figures in the titles and the caption are the computed ones
    from core.embeddings import (
        import_umap,
        neighbours_kept,
        parse_groups,
        pca_2d,
        tsne_2d,
        umap_neighbours,
        word_vector,
    )
    from core.runtime.worker import numba_cache_dir

    vecs = np.stack(
        [
            word_vector(embedding_matrix(lm.model), word_ids(lm.tokenizer, w))
            for _, ws in parse_groups(at.text_area(key="embeddings.groups").value)
            for w in ws
        ]
    )
    titles = " ".join(str(spec) for spec in chart_specs(at))
    assert f"'{neighbours_kept(vecs, pca_2d(vecs).xy, 5):.0%} of neighbours kept']" in titles
    assert "t-SNE" not in titles  # nothing long runs before the button
    draw = next(b for b in at.button if str(b.label).startswith("Draw t-SNE and UMAP"))
    draw.click().run(timeout=600)
    assert not at.exception, at.exception
    import os

    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    perplexity = at.slider(key="embeddings.map.perplexity").value
    nn = umap_neighbours(len(vecs), at.slider(key="embeddings.map.n_neighbors").value)
    umap_xy = (
        import_umap()
        .UMAP(n_neighbors=nn, min_dist=0.1, metric="cosine", random_state=42)
        .fit_transform(vecs.astype(np.float32))
    )
    kept = {
        "pca": neighbours_kept(vecs, pca_2d(vecs).xy, 5),
        "tsne": neighbours_kept(vecs, tsne_2d(vecs, perplexity=perplexity).xy, 5),
        "umap": neighbours_kept(vecs, umap_xy, 5),
    }
    titles = " ".join(str(spec) for spec in chart_specs(at))
    assert f"['t-SNE', '{kept['tsne']:.0%} of neighbours kept']" in titles
    assert f"['UMAP (umap-learn)', '{kept['umap']:.0%} of neighbours kept']" in titles
    assert kept["tsne"] > kept["pca"] and kept["umap"] > kept["pca"]
    assert any(
        f"PCA {kept['pca']:.0%}, t-SNE {kept['tsne']:.0%}, UMAP {kept['umap']:.0%}" in c.value
        for c in at.caption
    )
    pca = all_chart_data(at, "x", "y", "word", "label_side")[0]
    hidden = int((pca["label_side"] == 0).sum())
    if hidden:
        assert any(f"up to {hidden} of {len(pca)} are hidden" in c.value for c in at.caption)
    # every neighbour bar keeps its name: the axis never thins labels
    bars = next(s for s in chart_specs(at) if "Closest of all" in str(s))
    assert bars["encoding"]["y"]["axis"]["labelOverlap"] is False
    at.text_input(key="embeddings.word").set_value("Paris").run()
    assert not at.exception
    nb = all_chart_data(at, "token", "id", "cosine")[0]
    table = embedding_matrix(lm.model)
    ids = word_ids(lm.tokenizer, "Paris")
    cos = unit_rows(table.astype(np.float64)) @ (
        table[list(ids)].mean(0) / np.linalg.norm(table[list(ids)].mean(0))
    )
    cos[list(ids)] = -np.inf
    assert nb["id"].tolist() == np.argsort(-cos)[:10].tolist()
    ref = nearest_neighbours(unit_rows(table), table[list(ids)].mean(0), 10, exclude=ids)
    assert nb["id"].tolist() == [n.token_id for n in ref]

    at.text_area(key="embeddings.sentences").set_value("A dog barks.\nA puppy yaps.\nTaxes rose.")
    at.run()
    sims = [df for df in all_chart_data(at, "row", "col", "value") if len(df) == 9]
    assert sims, "a 3 x 3 similarity matrix"
    m = sims[0].pivot(index="row", columns="col", values="value").to_numpy()
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)

    at.text_input(key="embeddings.word").set_value("   ").run()
    at.text_input(key="embeddings.ctx_word").set_value("<b>zz</b>").run()
    assert not at.exception, at.exception
    assert any("Empty word" in m.value for m in at.info)
    assert any("Need at least two sentences" in m.value for m in at.info)


def test_embeddings_vocabulary_search_finds_tokens_and_takes_bad_input(lm):
    from core.embeddings import embedding_matrix, unit_rows

    at = open_page("pages/07_embeddings.py")
    table = unit_rows(embedding_matrix(lm.model).astype(np.float64))
    at.text_input(key="embeddings.word").set_value("king").run()
    options = at.selectbox(key="embeddings.token").options
    assert len(options) > 3 and "'·king', token" in options[0]
    # a token found by the search (not the word as typed): its neighbours by brute force
    at.selectbox(key="embeddings.token").set_value(options[2]).run()
    token_id = int(options[2].rsplit("token ", 1)[1])
    assert "king" in lm.tokenizer.decode([token_id]).lower()
    nb = all_chart_data(at, "token", "id", "cosine")[0]
    cos = table @ table[token_id]
    cos[token_id] = -np.inf
    assert nb["id"].tolist() == np.argsort(-cos)[:10].tolist()
    for typed in ("", "🙂🙂", "x" * 20_000, "<script>alert(1)</script>", "$x$", "<|im_start|>",
                  "東京", "unbelievably"):  # fmt: skip
        at.text_input(key="embeddings.word").set_value(typed).run()
        assert not at.exception, (typed[:20], at.exception)
        first = at.selectbox(key="embeddings.token").options[0]
        if typed and len(lm.tokenizer(" " + typed[:40])["input_ids"]) > 1:
            assert first.startswith("as typed: mean of")
