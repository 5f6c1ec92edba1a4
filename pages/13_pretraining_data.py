"""13 Pre-training Data: a filtering pipeline run live on a sample corpus with injected junk."""

import streamlit as st

from components import pretraining_data as pdv
from components.charts import draw_chart
from components.frame import page_frame, show_code
from components.jobs import run_job
from components.models import get_lm
from components.questions import check_yourself
from core import pretraining_data as dp

page_frame(13)
st.markdown(
    "A model learns whatever its training text contains, so web-scale corpora pass a "
    "**filtering pipeline** first: keep one language, drop what does not read like prose "
    "(menus, cookie banners, spam), drop repeated text, remove exact and near duplicates, mask "
    "personal data. Here it runs live on paragraphs of Python's documentation mixed with junk "
    "of each kind injected on purpose, so every filter's catch can be counted."
)

docs = pdv.cached_corpus()
lm = get_lm()
tokens = pdv.cached_token_counts(lm.model_id)
d, q, k = dp.Thresholds(), "query-params", "pretraining_data"
c1, c2, c3, c4 = st.columns(4)
min_english = c1.slider(
    "Min English share of stop words", 0.0, 1.0, d.min_english, 0.05, key=f"{k}.english", bind=q
)
min_words = c1.slider("Min words", 0, 60, d.min_words, key=f"{k}.min_words", bind=q)
max_symbols = c2.slider(
    "Max symbol share",
    0.05,
    1.0,
    d.max_symbol_ratio,
    0.05,
    key=f"{k}.symbols",
    bind=q,
    help="Characters that are neither letters, digits nor spaces.",
)
min_stop = c2.slider(
    "Min English stop-word share",
    0.0,
    0.4,
    d.min_stopword_ratio,
    0.01,
    key=f"{k}.stop",
    bind=q,
    help="Running prose is full of 'the', 'of', 'is'; lists, code and spam are not.",
)
max_caps = c3.slider(
    "Max words in capitals", 0.05, 1.0, d.max_caps_ratio, 0.05, key=f"{k}.caps", bind=q
)
max_boiler = c3.slider(
    "Max boilerplate lines",
    0.0,
    1.0,
    d.max_boilerplate_lines,
    0.05,
    key=f"{k}.boiler",
    bind=q,
    help="Lines with a cookie, menu or footer "
    "phrase, or a navigation bar like 'Home | About | Blog'.",
)
near = c4.slider(
    "Near-duplicate Jaccard",
    0.3,
    1.0,
    d.jaccard,
    0.05,
    key=f"{k}.jaccard",
    bind=q,
    help="LSH candidate pairs whose MinHash estimate of the Jaccard "
    "similarity reaches this are duplicates; the later one is dropped.",
)
shingle = c4.slider("Shingle size (characters)", 2, 9, d.shingle, key=f"{k}.shingle")
with st.expander("MinHash and repetition settings"):
    r1, r2, r3, r4, r5 = st.columns(5)
    num_perm = r1.select_slider(
        "MinHash permutations", (16, 32, 64, 128, 256), d.num_perm, key=f"{k}.perm", bind=q
    )
    band_options = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b <= num_perm]
    if st.session_state.setdefault(f"{k}.bands", d.bands) not in band_options:
        st.session_state[f"{k}.bands"] = min(d.bands, num_perm)  # fewer bands than rows
    bands = r2.select_slider(
        "LSH bands",
        band_options,
        key=f"{k}.bands",
        help="The signature is cut into this "
        "many bands; two documents become a candidate pair when any band "
        "matches exactly.",
    )
    dup_lines = r3.slider("Max repeated lines", 0.0, 1.0, d.max_dup_lines, 0.05, key=f"{k}.lines")
    top2 = r4.slider(
        "Max share of the top word pair", 0.05, 1.0, d.max_top_bigram, 0.05, key=f"{k}.top2"
    )
    dup5 = r5.slider(
        "Max share in repeated 5-grams", 0.05, 1.0, d.max_dup_5gram, 0.05, key=f"{k}.dup5"
    )
t = dp.Thresholds(
    min_english,
    min_words,
    max_symbols,
    min_stop,
    max_caps,
    max_boiler,
    dup_lines,
    top2,
    dup5,
    shingle,
    num_perm,
    bands,
    near,
)
result = pdv.cached_pipeline(t)
recall = dp.recall_table(docs, result)

left, right = st.columns([1, 1])
draw_chart(pdv.funnel_chart(pdv.funnel_frame(result, tokens)), where=left)
right.dataframe(
    pdv.recall_frame(recall),
    hide_index=True,
    width="stretch",
    column_config={
        "recall": st.column_config.ProgressColumn(
            "recall", format="percent", min_value=0.0, max_value=1.0, width="small"
        ),
        "injected kind": st.column_config.TextColumn("kind", width="small"),
        "documents": st.column_config.NumberColumn("docs", width="small"),
        "caught": st.column_config.NumberColumn(width="small"),
    },
)
clean, lost = recall[0], pdv.clean_dropped_by_source(docs, result)
right.caption(
    f"{len(docs):,} documents: {clean.injected:,} distinct paragraphs of Python's "
    f"documentation and {len(docs) - clean.injected} injected. The filters also "
    f"dropped {clean.dropped_any} real paragraphs, {lost['docs code']} of them code "
    f"listings or grammar rules (rules written for prose see those as junk) and "
    f"{lost['docs prose']} prose. Tokens counted with {lm.model_id}'s tokenizer."
)

drop_tab, dedup_tab, pii_tab, mix_tab, ppl_tab, own_tab = st.tabs(
    [
        "Dropped documents",
        "Near duplicates: MinHash",
        "Personal data",
        "Mixture",
        "Model-based filtering",
        "Try your own text",
    ]
)
with drop_tab:
    pdv.dropped_table(docs, result)
with dedup_tab:
    pdv.minhash_section(t, result)
with pii_tab:
    pdv.pii_section(docs, result)
with mix_tab:
    pdv.mixture_section(docs, result, tokens)
with ppl_tab:
    st.markdown(
        "Pipelines such as CCNet keep documents that a language model trained on clean text "
        "finds likely (low perplexity). Which model scores matters: an LM trained on the web "
        "has read cookie banners and menus countless times. Here the selected LM and a "
        "character 4-gram model trained on the clean documentation paragraphs score the "
        "same opening of a few documents of each kind."
    )
    per_kind = st.slider("Documents per kind", 2, 12, 6, key=f"{k}.ppl_docs")
    sample = dp.perplexity_sample(docs, per_kind)
    scored = run_job(
        ("pretraining_data", "perplexity", lm.model_id, per_kind, 32),
        lambda report: dp.score_perplexities(lm, lm.model_id, docs, sample, report),
        start_label=f"Score {len(sample)} documents with both models",
        estimate_s=1.0 + len(sample) * pdv.LM_S_PER_DOC,
        caps=f"{len(sample)} documents, the first 32 tokens of each.",
    )
    if scored is not None:
        pdv.perplexity_section(scored)
with own_tab:
    pdv.own_text_section(t)

show_code(dp.run_pipeline, dp.quality_reason, dp.minhash_signatures, dp.lsh_candidates)

check_yourself()
