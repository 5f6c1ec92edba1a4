"""13 Pre-training Data: a filtering pipeline run live on a sample corpus with injected junk."""

import streamlit as st

from components import pretraining_data as pdv
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.jobs import run_job
from components.preamble import model_page
from components.questions import check_yourself
from core import pretraining_data as dp

page_frame()
with intro():
    st.markdown(
        "A model learns whatever its training text contains, so web-scale corpora pass a "
        "**filtering pipeline** first: keep one language, drop what does not read like prose "
        "(menus, cookie banners, spam), drop repeated text, remove exact and near duplicates, mask "
        "personal data. Here it runs live on paragraphs of Python's documentation mixed with junk "
        "of each kind injected on purpose, so every filter's catch can be counted."
    )

docs = pdv.cached_corpus()
lm, _ = model_page(prompt=False)
tokens = pdv.cached_token_counts(lm.model_id)
t = pdv.settings_panel()
result = pdv.cached_pipeline(t)
recall = dp.recall_table(docs, result)

draw_chart(pdv.funnel_chart(pdv.funnel_frame(result, tokens)))
st.dataframe(  # full width: its six columns fit a projector uncut
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
        "dropped (any stage)": st.column_config.NumberColumn(
            "dropped", help="Dropped at any stage of the pipeline."
        ),
    },
)
clean = recall[0]
st.caption(
    f"{len(docs):,} documents: {clean.injected:,} distinct paragraphs of Python's "
    f"documentation and {len(docs) - clean.injected} injected. The filters also "
    f"dropped {pdv.lost_text(docs, result)}. Tokens counted with {lm.model_id}'s tokenizer."
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
    per_kind = st.slider("Documents per kind", 2, 12, 6, key="pretraining_data.ppl_docs")
    sample = dp.perplexity_sample(docs, per_kind)
    scored = run_job(
        ("pretraining_data", "perplexity", lm.model_id, per_kind, 32),
        lambda report: dp.score_perplexities(lm, lm.model_id, docs, sample, report),
        start_label=f"Score {len(sample)} documents with both models",
        estimate_s=pdv.perplexity_estimate_s(len(sample)),
        caps=f"{len(sample)} documents, the first 32 tokens of each.",
    )
    if scored is not None:
        pdv.perplexity_section(scored)
with own_tab:
    pdv.own_text_section(t)

show_code(dp.run_pipeline, dp.QualityFilter, dp.minhash_signatures, dp.lsh_candidates)

check_yourself()
