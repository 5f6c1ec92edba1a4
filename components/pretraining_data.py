"""Page 13 (pre-training data): cached pipeline runs, funnel, dropped documents, MinHash views,
mixtures and the perplexity comparison."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart, fitting_columns, ink_on
from core import pretraining_data as dp

STAGE_ORDER = list(dp.STAGES)
MEASURES = ["documents", "tokens"]
MEASURE_COLOURS = alt.Scale(domain=MEASURES, range=["#1c7ed6", "#f08c00"])
KIND_ORDER = list(dp.KINDS)
# SmolLM2 over 32 tokens: about 12 CPU-seconds per 100 documents (measured on an
# idle 2-core machine); heavily loaded machines are far slower (see bench/results.md).
LM_S_PER_DOC = 0.12
PREVIEW_CHARS = 160


def perplexity_estimate_s(documents: int) -> float:
    return 1.0 + documents * LM_S_PER_DOC


# ---- cached wrappers -----------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def cached_corpus() -> tuple[dp.Doc, ...]:
    return dp.sample_corpus()


@st.cache_resource(show_spinner="Computing MinHash signatures…", max_entries=8)
def cached_signatures(k: int, num_perm: int) -> np.ndarray:
    sig = dp.minhash_signatures((dp.shingles(d.text, k) for d in cached_corpus()), num_perm)
    sig.setflags(write=False)  # shared by every session
    return sig


@st.cache_resource(show_spinner=False)
def cached_stats() -> tuple[dp.DocStats, ...]:
    return tuple(dp.doc_stats(d.text) for d in cached_corpus())


@st.cache_resource(show_spinner="Filtering…", max_entries=64)
def cached_pipeline(t: dp.Pipeline) -> dp.PipelineResult:
    near = t.step("near dedup")
    return dp.run_pipeline(
        cached_corpus(), t, cached_signatures(near.shingle, near.num_perm), cached_stats()
    )


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_token_counts(model_id: str) -> dict[int, int]:
    """Tokens per document with the selected LM's tokenizer."""
    from components.models import load_model

    tok = load_model(model_id).tokenizer
    docs = cached_corpus()
    ids = tok([d.text for d in docs], add_special_tokens=False)["input_ids"]
    return {d.id: len(x) for d, x in zip(docs, ids, strict=True)}


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_minhash_check(k: int, num_perm: int) -> dp.JaccardCheck:
    return dp.minhash_check(cached_corpus(), k, cached_signatures(k, num_perm))


# ---- frames and charts ---------------------------------------------------------------------


def funnel_frame(result: dp.PipelineResult, tokens: dict[int, int]) -> pd.DataFrame:
    raw_docs = len(result.kept[0])
    raw_tokens = sum(tokens[i] for i in result.kept[0])
    rows = []
    for stage, ids in zip(dp.STAGES, result.kept, strict=True):
        n_tokens = sum(tokens[i] for i in ids)
        rows.append(
            {"stage": stage, "measure": "documents", "kept": len(ids), "share": len(ids) / raw_docs}
        )
        rows.append(
            {"stage": stage, "measure": "tokens", "kept": n_tokens, "share": n_tokens / raw_tokens}
        )
    return pd.DataFrame(rows)


def funnel_chart(df: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(df).encode(
        y=alt.Y("stage:N", sort=STAGE_ORDER, title="after stage"),
        yOffset=alt.YOffset("measure:N", sort=MEASURES),
        x=alt.X(
            "share:Q",
            title="share of the raw sample kept",
            axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1.0]),
            scale=alt.Scale(domain=[0, 1]),
        ),
        tooltip=[
            "stage",
            "measure",
            alt.Tooltip("kept:Q", format=","),
            alt.Tooltip("share:Q", format=".1%"),
        ],
    )
    bars = base.mark_bar().encode(
        color=alt.Color(
            "measure:N", scale=MEASURE_COLOURS, title=None, legend=alt.Legend(orient="top")
        )
    )
    # inside the bar, in the ink that reads on that bar's colour (white on orange did not)
    inks = [ink_on(c) for c in MEASURE_COLOURS.range]
    labels = base.mark_text(align="right", dx=-3, fontSize=10).encode(
        text=alt.Text("kept:Q", format=","),
        color=alt.condition(
            f"datum.measure == '{MEASURES[0]}'", alt.value(inks[0]), alt.value(inks[1])
        ),
    )
    return (bars + labels).properties(height=alt.Step(13))


def recall_frame(rows: tuple[dp.RecallRow, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "injected kind": r.kind,
                "documents": r.injected,
                "caught": r.caught,
                "recall": r.recall if r.kind != "clean" else np.nan,
                "caught by": r.target,
                "dropped (any stage)": r.dropped_any,
            }
            for r in rows
        ]
    )


def dropped_frame(docs: tuple[dp.Doc, ...], result: dp.PipelineResult) -> pd.DataFrame:
    by_id = {d.id: d for d in docs}
    rows = []
    for x in result.dropped:
        d = by_id[x.doc_id]
        preview = " ".join(d.text.split())
        rows.append(
            {
                "id": d.id,
                "stage": x.stage,
                "reason": x.reason,
                "kind": d.kind,
                "source": d.source,
                "text": preview[:PREVIEW_CHARS] + ("…" if len(preview) > PREVIEW_CHARS else ""),
            }
        )
    return pd.DataFrame(rows, columns=["id", "stage", "reason", "kind", "source", "text"])


def s_curve_frame(bands: int, rows: int) -> pd.DataFrame:
    s = np.linspace(0, 1, 101)
    return pd.DataFrame(
        {"Jaccard similarity": s, "P(candidate pair)": dp.candidate_probability(s, bands, rows)}
    )


def s_curve_chart(df: pd.DataFrame, threshold: float, check: dp.JaccardCheck) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line(color="#1c7ed6")
        .encode(
            x=alt.X("Jaccard similarity:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("P(candidate pair):Q", scale=alt.Scale(domain=[0, 1])),
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"Jaccard similarity": [threshold]}))
        .mark_rule(color="#e03131", strokeDash=[4, 3])
        .encode(x="Jaccard similarity:Q")
    )
    near = check.true[np.array(check.pair) == "near-duplicate pair"]
    rug = (
        alt.Chart(pd.DataFrame({"Jaccard similarity": near, "P(candidate pair)": 0.03}))
        .mark_tick(color="#f08c00", thickness=1)
        .encode(
            x="Jaccard similarity:Q",
            y="P(candidate pair):Q",
            tooltip=alt.Tooltip("Jaccard similarity:Q", title="true Jaccard", format=".2f"),
        )
    )
    return alt.layer(line, rule, rug).properties(height=230)


def jaccard_frame(check: dp.JaccardCheck) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "true Jaccard": check.true.round(4),
            "MinHash estimate": check.estimated.round(4),
            "pair": check.pair,
        }
    )


def jaccard_chart(df: pd.DataFrame) -> alt.Chart:
    diag = (
        alt.Chart(pd.DataFrame({"true Jaccard": [0, 1], "MinHash estimate": [0, 1]}))
        .mark_line(color="#868e96", strokeDash=[4, 3])
        .encode(x="true Jaccard:Q", y="MinHash estimate:Q")
    )
    pts = (
        alt.Chart(df)
        .mark_circle(size=22, opacity=0.7)
        .encode(
            x=alt.X("true Jaccard:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("MinHash estimate:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "pair:N",
                scale=alt.Scale(range=["#f08c00", "#1c7ed6"]),
                legend=alt.Legend(
                    orient="bottom", title=None, columns=fitting_columns(df["pair"].unique())
                ),
            ),
            tooltip=["pair", "true Jaccard", "MinHash estimate"],
        )
    )
    return alt.layer(diag, pts).properties(height=230)


def available_tokens(
    docs: tuple[dp.Doc, ...], kept: tuple[int, ...], tokens: dict[int, int]
) -> dict[str, int]:
    source = {d.id: d.source for d in docs}
    out = dict.fromkeys(dp.SOURCES, 0)
    for i in kept:
        out[source[i]] += tokens[i]
    return out


def mixture_frame(rows: tuple[dp.MixRow, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "source": r.source,
                "share of budget": r.share,
                "tokens drawn": round(r.tokens),
                "unique tokens after filtering": r.available,
                "epochs": r.epochs,
            }
            for r in rows
        ]
    )


def mixture_chart(df: pd.DataFrame, repeat_limit: float) -> alt.Chart:
    shown = df.assign(epochs=df["epochs"].replace([np.inf], np.nan))
    bars = (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            y=alt.Y("source:N", title=None, sort=list(dp.SOURCES)),
            x=alt.X("epochs:Q", title="epochs (times each unique token is seen)"),
            color=alt.condition(
                f"datum.epochs > {repeat_limit}", alt.value("#e03131"), alt.value("#2f9e44")
            ),
            tooltip=[
                "source",
                alt.Tooltip("share of budget:Q", format=".0%"),
                alt.Tooltip("tokens drawn:Q", format=","),
                alt.Tooltip("unique tokens after filtering:Q", format=","),
                alt.Tooltip("epochs:Q", format=".2f"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"x": [repeat_limit]}))
        .mark_rule(strokeDash=[4, 3], color="#868e96")
        .encode(x="x:Q")
    )
    return alt.layer(bars, rule).properties(height=alt.Step(30))


def perplexity_frame(result: dp.PerplexityResult) -> pd.DataFrame:
    rows = []
    for r in result.rows:
        preview = " ".join(r.prefix.split())[:80]
        rows.append(
            {
                "id": r.doc_id,
                "kind": r.kind,
                "model": "LM",
                "perplexity": r.lm_perplexity,
                "text": preview,
            }
        )
        rows.append(
            {
                "id": r.doc_id,
                "kind": r.kind,
                "model": "character n-gram",
                "perplexity": r.ngram_perplexity,
                "text": preview,
            }
        )
    return pd.DataFrame(rows)


def perplexity_chart(df: pd.DataFrame, model: str) -> alt.Chart:
    """One tick per sampled document, a row per injected kind, for one of the two models."""
    kinds = [k for k in KIND_ORDER if k in set(df["kind"])]
    return (
        alt.Chart(df[df["model"] == model])
        .mark_tick(thickness=2, size=16)
        .encode(
            x=alt.X(
                "perplexity:Q", scale=alt.Scale(type="log"), title=f"{model} perplexity (log scale)"
            ),
            y=alt.Y("kind:N", sort=kinds, title=None),
            color=alt.Color("kind:N", sort=kinds, legend=None),
            tooltip=["kind", "id", alt.Tooltip("perplexity:Q", format=".1f"), "text"],
        )
        .properties(height=alt.Step(24))
    )


def median_table(df: pd.DataFrame) -> pd.DataFrame:
    kinds = [k for k in KIND_ORDER if k in set(df["kind"])]
    return (
        df.pivot_table(index="kind", columns="model", values="perplexity", aggfunc="median")
        .reindex(kinds)
        .round(1)
    )


def clean_dropped_by_source(docs: tuple[dp.Doc, ...], result: dp.PipelineResult) -> dict[str, int]:
    by_id = {d.id: d for d in docs}
    out = dict.fromkeys(dp.SOURCES, 0)
    for x in result.dropped:
        if by_id[x.doc_id].kind == "clean":
            out[by_id[x.doc_id].source] += 1
    return out


def flagged_share(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: the share of each kind scored above the worst clean paragraph of the sample,
    i.e. what a perplexity threshold that keeps every clean paragraph would drop."""
    rows = []
    for model, part in df.groupby("model"):
        limit = part.loc[part["kind"] == "clean", "perplexity"].max()
        for kind, g in part[part["kind"] != "clean"].groupby("kind"):
            rows.append(
                {"model": model, "kind": kind, "dropped": float((g["perplexity"] > limit).mean())}
            )
    return pd.DataFrame(rows).pivot(index="kind", columns="model", values="dropped")


# ---- sections (drawing) --------------------------------------------------------------------


def dropped_table(docs: tuple[dp.Doc, ...], result: dp.PipelineResult) -> None:
    df = dropped_frame(docs, result)
    c1, c2 = st.columns(2)
    stages = c1.multiselect(
        "Stage", STAGE_ORDER[1:], key="pretraining_data.drop_stage", placeholder="every stage"
    )
    kinds = c2.multiselect(
        "Injected kind", KIND_ORDER, key="pretraining_data.drop_kind", placeholder="every kind"
    )
    if stages:
        df = df[df["stage"].isin(stages)]
    if kinds:
        df = df[df["kind"].isin(kinds)]
    st.caption(
        f"Showing {len(df):,} of {len(result.dropped):,} dropped documents, each with "
        f"the first rule it failed (texts cut at {PREVIEW_CHARS} characters). "
        "'kind' is what was injected; 'clean' means a real documentation paragraph."
    )
    st.dataframe(  # widths that fit a projector: the preview is cut, hover a cell for it all
        df,
        hide_index=True,
        width="stretch",
        height=320,
        column_config={
            "id": st.column_config.NumberColumn(width="small"),
            "kind": st.column_config.TextColumn(width="small"),
            "reason": st.column_config.TextColumn(width="medium"),
            "stage": st.column_config.TextColumn(width="small"),
            "text": st.column_config.TextColumn("text (preview)", width="medium"),
        },
    )


def collision_text(bands: int, rows: int, jaccard: float) -> str:
    """The S-curve's value at a few similarities, from 1 − (1 − s^r)^b: how likely a pair is
    to be compared at all (the steepest point (1/b)^(1/r) is no "almost always")."""
    steep = dp.lsh_threshold(bands, rows)
    points = sorted({0.3, 0.5, round(steep, 2), round(jaccard, 2), 0.8, 0.9})
    parts = [f"{dp.candidate_probability(s, bands, rows):.0%} at {s:.2f}" for s in points]
    return (
        f"a pair of Jaccard similarity s becomes a candidate with probability 1 − (1 − s^{rows})"
        f"^{bands}: {', '.join(parts)} (the curve is steepest near (1/b)^(1/r) = {steep:.2f})"
    )


RULE_STAGES_NOTE = "rules written for prose"


def lost_text(docs: tuple[dp.Doc, ...], result: dp.PipelineResult) -> str:
    """Which real paragraphs the pipeline dropped, by source, and at which kind of stage: by a
    rule written for prose (language, quality, repetition) or as a duplicate of another."""
    by_id = {d.id: d for d in docs}
    rules: dict[str, int] = dict.fromkeys(dp.SOURCES, 0)
    dups: dict[str, int] = dict.fromkeys(dp.SOURCES, 0)
    for x in result.dropped:
        d = by_id[x.doc_id]
        if d.kind == "clean":
            (dups if "dedup" in x.stage else rules)[d.source] += 1
    names = {"docs code": "code listings or grammar rules", "docs prose": "prose paragraphs"}
    parts = []
    for source, name in names.items():
        n = rules.get(source, 0) + dups.get(source, 0)
        if n:
            parts.append(
                f"{n} {name} ({rules.get(source, 0)} by {RULE_STAGES_NOTE}, "
                f"{dups.get(source, 0)} as near or exact duplicates of another paragraph)"
            )
    total = sum(rules.values()) + sum(dups.values())
    return f"{total} real paragraphs" + (": " + " and ".join(parts) if parts else "")


def minhash_section(pipeline: dp.Pipeline, result: dp.PipelineResult) -> None:
    t = pipeline.step("near dedup")
    rows = t.num_perm // t.bands
    check = cached_minhash_check(t.shingle, t.num_perm)
    st.markdown(
        f"Comparing every pair of {len(result.kept[4]):,} documents is slow at web scale. "
        f"**MinHash** turns each document's set of {t.shingle}-character shingles into "
        f"{t.num_perm} numbers (the smallest hash under {t.num_perm} random permutations); "
        "the share of equal numbers between two documents estimates their Jaccard similarity "
        "(shared shingles / all shingles). **LSH** cuts the signature into "
        f"{t.bands} bands of {rows} rows and only compares documents that match exactly on a "
        f"whole band: {collision_text(t.bands, rows, t.jaccard)}. Here LSH proposed "
        f"{result.candidate_pairs:,} candidate pairs; those with an estimate of at least "
        f"{t.jaccard:.2f} were dropped."
    )
    c1, c2 = st.columns(2)
    draw_chart(s_curve_chart(s_curve_frame(t.bands, rows), t.jaccard, check), where=c1)
    c1.caption(
        "Chance that a pair becomes a candidate, 1 − (1 − s^r)^b; orange ticks: the "
        "true Jaccard of each injected near-duplicate with its original; red: the "
        "threshold."
    )
    draw_chart(jaccard_chart(jaccard_frame(check)), where=c2)
    c2.caption(
        f"MinHash estimate against exact Jaccard for {len(check.true)} pairs: mean "
        f"absolute error {check.mean_abs_error:.3f} with {t.num_perm} permutations "
        "(fewer permutations, noisier estimates)."
    )


def pii_section(docs: tuple[dp.Doc, ...], result: dp.PipelineResult) -> None:
    by_id = {d.id: d for d in docs}
    total = sum(n for _, _, n in result.masked)
    wrong = [m for m in result.masked if by_id[m[0]].kind != "pii"]
    st.markdown(
        f"Regular expressions replaced {total} e-mail addresses, phone numbers and IP "
        f"addresses in {len(result.masked)} of the {len(result.kept[-1]):,} kept "
        f"documents. {len(wrong)} of those documents had no injected personal data: "
        "there a rule fired on something else (shown first when present). Rules miss "
        "unusual formats and hit look-alikes, so real pipelines check a sample by hand."
    )
    shown = (wrong + [m for m in result.masked if m not in wrong])[:3]
    for doc_id, masked, _ in shown:
        c1, c2 = st.columns(2)
        c1.text(f"document {doc_id} ({by_id[doc_id].kind}), before")
        c1.code(by_id[doc_id].text, language=None, wrap_lines=True)
        c2.text("after masking")
        c2.code(masked, language=None, wrap_lines=True)
    if len(result.masked) > len(shown):
        st.caption(f"Showing {len(shown)} of {len(result.masked)} masked documents.")


def mixture_section(
    docs: tuple[dp.Doc, ...], result: dp.PipelineResult, tokens: dict[int, int]
) -> None:
    have = available_tokens(docs, result.kept[-1], tokens)
    st.markdown(
        "A training run draws a fixed number of tokens from several sources in chosen "
        "proportions. A small, valuable source given a large weight is repeated many "
        "times: up to about 4 epochs, repeated data trains almost as well as new data "
        "(Muennighoff et al., 2023); far beyond that it is mostly memorised."
    )
    cols = st.columns(len(dp.SOURCES) + 1)
    budget = cols[0].select_slider(
        "Token budget",
        (50_000, 100_000, 200_000, 500_000, 1_000_000, 5_000_000),
        500_000,
        format_func=lambda v: f"{v:,}",
        key="pretraining_data.budget",
    )
    defaults = {"docs prose": 50, "docs code": 20, "web crawl": 30}
    weights = {
        s: cols[i + 1].slider(f"Weight: {s}", 0, 100, defaults[s], key=f"pretraining_data.w.{s}")
        for i, s in enumerate(dp.SOURCES)
    }
    if sum(weights.values()) == 0:
        st.info("All weights are 0: give at least one source some weight. Using equal weights.")
        weights = dict.fromkeys(dp.SOURCES, 1)
    df = mixture_frame(dp.mixture_plan(have, weights, budget))
    c1, c2 = st.columns([3, 2])
    draw_chart(mixture_chart(df, 4.0), where=c1)
    c2.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "share of budget": st.column_config.NumberColumn("share", format="percent"),
            "tokens drawn": st.column_config.NumberColumn("drawn", format="localized"),
            "unique tokens after filtering": st.column_config.NumberColumn(
                "unique", format="localized", help="Unique tokens left after filtering"
            ),
            "epochs": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    st.caption(
        "Unique tokens are what each source keeps after the pipeline above; red bars "
        "pass 4 epochs (dashed line)."
    )


def perplexity_section(scored: dp.PerplexityResult) -> None:
    df = perplexity_frame(scored)
    med = median_table(df)
    c1, c2 = st.columns(2)
    draw_chart(perplexity_chart(df, "LM"), where=c1)
    draw_chart(perplexity_chart(df, "character n-gram"), where=c2)
    lm_b, lm_c = med.loc["boilerplate", "LM"], med.loc["clean", "LM"]
    ng_b, ng_c = med.loc["boilerplate", "character n-gram"], med.loc["clean", "character n-gram"]
    lm_word = "more fluent than" if lm_b < lm_c else "less fluent than"
    ng_word = "flags it" if ng_b > ng_c else "does not flag it"
    if lm_b < lm_c and ng_b > ng_c:
        lesson = (
            "The lesson: a model-based filter keeps what looks like its own training "
            "data. A web-trained LM keeps web boilerplate; a model of the text you want "
            "keeps that text."
        )
    else:
        lesson = (
            "On this sample the two models do not split the way they often do (a "
            "web-trained LM rating boilerplate as fluent): score more documents per kind "
            "for steadier medians."
        )
    st.markdown(
        f"Median perplexity of boilerplate against clean documentation prose: **{lm_b:.1f} vs "
        f"{lm_c:.1f}** for {scored.model_id}, which finds boilerplate {lm_word} the real "
        f"text; the character {scored.ngram_order}-gram model trained on "
        f"{scored.ngram_training_docs} clean paragraphs gives **{ng_b:.1f} vs {ng_c:.1f}** and "
        f"{ng_word}. {lesson}"
    )
    c1, c2 = st.columns(2)
    c1.caption("Median perplexity per kind")
    c1.dataframe(med, width="stretch")
    c2.caption("Dropped by a threshold just above the worst clean paragraph of the sample")
    c2.dataframe(
        flagged_share(df),
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="percent") for c in ("LM", "character n-gram")
        },
    )


def own_text_section(pipeline: dp.Pipeline) -> None:
    text = st.text_area(
        "A document to run through the rules",
        key="pretraining_data.own",
        max_chars=20_000,
        height=120,
        value="Subscribe to our newsletter!\nHome | About | Blog | Contact\n"
        "Write to jane.doe@example.com or call +1 555-0123.",
    )
    if not text.strip():
        st.info("Type or paste a document to see which rules it passes.")
        return
    lang, share = dp.language_of(text)
    verdicts = [(s.name, s.reason(text)) for s in pipeline.steps if isinstance(s, dp.RuleFilter)]
    stats = dp.quality_stats(text) | dp.repetition_stats(text)
    st.text(f"Detected: {lang} (English share of stop words {share:.0%})")
    for stage, why in verdicts:
        st.text(f"{stage}: " + ("passes" if why is None else f"dropped, {why}"))
    st.dataframe({k: round(v, 3) for k, v in stats.items()}, width="stretch")
    masked, n = dp.mask_pii(text)
    st.text(f"After PII masking ({n} replaced):")
    st.code(masked[:2000] + ("…" if len(masked) > 2000 else ""), language=None, wrap_lines=True)


def settings_panel() -> dp.Pipeline:
    """The pipeline's thresholds as sliders (the MinHash ones in an expander)."""
    lang, qual, rep = dp.LanguageFilter(), dp.QualityFilter(), dp.RepetitionFilter()
    dedup = dp.NearDedup()  # the steps at their default thresholds
    q, k = "query-params", "pretraining_data"
    c1, c2, c3, c4 = st.columns(4)
    min_english = c1.slider(
        "Min English share of stop words",
        0.0,
        1.0,
        lang.min_english,
        0.05,
        key=f"{k}.english",
        bind=q,
    )
    min_words = c1.slider("Min words", 0, 60, qual.min_words, key=f"{k}.min_words", bind=q)
    max_symbols = c2.slider(
        "Max symbol share",
        0.05,
        1.0,
        qual.max_symbol_ratio,
        0.05,
        key=f"{k}.symbols",
        bind=q,
        help="Characters that are neither letters, digits nor spaces.",
    )
    min_stop = c2.slider(
        "Min English stop-word share",
        0.0,
        0.4,
        qual.min_stopword_ratio,
        0.01,
        key=f"{k}.stop",
        bind=q,
        help="Running prose is full of 'the', 'of', 'is'; lists, code and spam are not.",
    )
    max_caps = c3.slider(
        "Max words in capitals", 0.05, 1.0, qual.max_caps_ratio, 0.05, key=f"{k}.caps", bind=q
    )
    max_boiler = c3.slider(
        "Max boilerplate lines",
        0.0,
        1.0,
        qual.max_boilerplate_lines,
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
        dedup.jaccard,
        0.05,
        key=f"{k}.jaccard",
        bind=q,
        help="LSH candidate pairs whose MinHash estimate of the Jaccard "
        "similarity reaches this are duplicates; the later one is dropped.",
    )
    shingle = c4.slider("Shingle size (characters)", 2, 9, dedup.shingle, key=f"{k}.shingle")
    with st.expander("MinHash and repetition settings"):
        r1, r2, r3, r4, r5 = st.columns(5)
        num_perm = r1.select_slider(
            "MinHash permutations", (16, 32, 64, 128, 256), dedup.num_perm, key=f"{k}.perm", bind=q
        )
        band_options = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b <= num_perm]
        if st.session_state.get(f"{k}.bands", dedup.bands) not in band_options:  # not setdefault:
            # a value set before the widget would outrank the one a shared link carries
            st.session_state[f"{k}.bands"] = min(dedup.bands, num_perm)  # fewer bands than rows
        bands = r2.select_slider(
            "LSH bands",
            band_options,
            min(dedup.bands, num_perm),
            key=f"{k}.bands",
            help="The signature is cut into this "
            "many bands; two documents become a candidate pair when any band "
            "matches exactly.",
        )
        dup_lines = r3.slider(
            "Max repeated lines", 0.0, 1.0, rep.max_dup_lines, 0.05, key=f"{k}.lines"
        )
        top2 = r4.slider(
            "Max share of the top word pair", 0.05, 1.0, rep.max_top_bigram, 0.05, key=f"{k}.top2"
        )
        dup5 = r5.slider(
            "Max share in repeated 5-grams", 0.05, 1.0, rep.max_dup_5gram, 0.05, key=f"{k}.dup5"
        )
    return dp.PIPELINE.with_steps(
        dp.LanguageFilter(min_english),
        dp.QualityFilter(min_words, max_symbols, min_stop, max_caps, max_boiler),
        dp.RepetitionFilter(dup_lines, top2, dup5),
        dp.NearDedup(shingle, num_perm, bands, near),
    )
