"""The context window (concept 20): prompt budget and truncation, forward cost against length,
KV-cache memory of published models, and the needle-in-a-haystack probe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import draw_chart, fitting_columns, sources_line
from components.jobs import finished_result, run_job
from components.models import load_model
from components.tokens import visible
from core import context_window
from core import inference_loop as inf
from core.inspect.anatomy import geometry

# --- cached measurements ----------------------------------------------------------------------


def forward_costs(model_id: str, longest: int, report=None) -> pd.DataFrame:
    """One forward pass at 32, 64, ... tokens of filler up to `longest`, each measured;
    `report(fraction, text)` after each length when given (weighted by its token count)."""
    lm = load_model(model_id)
    lengths = context_window.sweep_lengths(inf.context_length(lm.config), longest)
    ids = context_window.filler_ids(lm.tokenizer, max(lengths))
    context_window.forward_cost(
        lm, ids[:16]
    )  # warm-up: the first call pays one-off allocation costs
    rows, done, total = [], 0, sum(lengths)
    for n in lengths:
        rows.append(asdict(context_window.forward_cost(lm, ids[:n])))
        done += n
        if report is not None:
            report(done / total, f"{n} tokens measured")
    return pd.DataFrame(rows)


def forward_estimate_s(model_id: str, longest: int) -> float:
    """Idle-machine seconds for the sweep on a ~135M model on 2 cores (about 300 tokens a
    second per forward pass, plus a fixed cost per pass)."""
    lm = load_model(model_id)
    lengths = context_window.sweep_lengths(inf.context_length(lm.config), longest)
    return sum(lengths) / 300 + 0.3 * (len(lengths) + 1)


# Fixed cost of one pass of a ~135M model on 2 cores, measured on a busy machine: a 32-token
# pass took 0.14 s and a cached decode step 0.07 s (the sweep's own 0.3 s also pays warm-up).
# The needle estimate prices each new token at the shortest pass, so this sets its decode part.
PASS_OVERHEAD_S = 0.05


def cached_forward_costs(model_id: str, longest: int, run: int = 0) -> pd.DataFrame:
    """Forward costs for estimates (the needle probe's): the sweep's shared measurement when it
    has run with these settings, else an idle-machine model: about 300 tokens a second plus
    PASS_OVERHEAD_S per pass, with the byte columns from their formulas. Never runs the model,
    so a first render stays quick. `run` is accepted for older callers and ignored."""
    done = finished_result(("context_window", "forward", model_id, longest))
    if done is not None:
        return done.value
    lm = load_model(model_id)
    width = inf.model_dtype_bytes(lm.model)
    rows = []
    for n in context_window.sweep_lengths(inf.context_length(lm.config), longest):
        scores = context_window.attention_scores_formula(lm.config, n, width)
        kv = inf.kv_cache_bytes(lm.config, n, width)
        rows.append(
            {
                "tokens": n,
                "seconds": n / 300 + PASS_OVERHEAD_S,
                "scores_bytes": scores,
                "scores_formula": scores,
                "kv_bytes": kv,
                "kv_formula": kv,
            }
        )
    return pd.DataFrame(rows)


def forward_costs_job(model_id: str, longest: int) -> pd.DataFrame | None:
    """The length sweep behind a button (`components.jobs.run_job`): progress, Stop, and one
    result shared by every learner with the same model and longest length."""
    return run_job(
        ("context_window", "forward", model_id, longest),
        lambda report: forward_costs(model_id, longest, report),
        start_label=f"Measure forward passes up to {longest} tokens",
        estimate_s=forward_estimate_s(model_id, longest),
        caps=f"Lengths 32, 64, … up to {longest} (cap {inf.FORWARD_CAP}); the estimate "
        "is scaled by how busy this shared machine is right now.",
        rerun_label="Measure again",
    )


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_token_count(model_id: str, text: str) -> tuple[int, ...]:
    lm = load_model(model_id)
    return tuple(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()


# --- charts -----------------------------------------------------------------------------------


def forward_time_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Measured forward time beside n² and n curves scaled through the longest measurement."""
    last = df.iloc[-1]
    rows = []
    for _, r in df.iterrows():
        rows.append({"tokens": r.tokens, "ms": r.seconds * 1000, "series": "measured"})
        rows.append(
            {
                "tokens": r.tokens,
                "series": "n² (through the last point)",
                "ms": last.seconds * 1000 * (r.tokens / last.tokens) ** 2,
            }
        )
        rows.append(
            {
                "tokens": r.tokens,
                "series": "n (through the last point)",
                "ms": last.seconds * 1000 * (r.tokens / last.tokens),
            }
        )
    data = pd.DataFrame(rows)
    color = alt.Color(
        "series:N",
        title=None,
        legend=alt.Legend(orient="top", labelLimit=300, columns=1),
        scale=alt.Scale(
            domain=["measured", "n² (through the last point)", "n (through the last point)"],
            range=["#4C6EF5", "#e8590c", "#868e96"],
        ),
    )
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("ms:Q", title="forward pass (ms)"),
        color=color,
        tooltip=["series", "tokens", alt.Tooltip("ms:Q", format=".1f")],
    )
    measured = base.transform_filter(alt.datum.series == "measured").mark_line(point=True)
    curves = base.transform_filter(alt.datum.series != "measured").mark_line(strokeDash=[5, 4])
    return (curves + measured).properties(height=280)


def memory_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Bytes measured from the tensors (points) against their formulas (lines)."""
    rows = []
    for _, r in df.iterrows():
        for part, measured, formula in (
            ("attention scores, one layer (n²)", r.scores_bytes, r.scores_formula),
            ("KV cache, all layers (n)", r.kv_bytes, r.kv_formula),
        ):
            rows.append({"tokens": r.tokens, "part": part, "MB": measured / 1e6, "how": "measured"})
            rows.append({"tokens": r.tokens, "part": part, "MB": formula / 1e6, "how": "formula"})
    data = pd.DataFrame(rows)
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("MB:Q", title="memory (MB)"),
        color=alt.Color(
            "part:N", title=None, legend=alt.Legend(orient="top", labelLimit=300, columns=1)
        ),
        tooltip=["part", "how", "tokens", alt.Tooltip("MB:Q", format=".3f")],
    )
    lines = base.transform_filter(alt.datum.how == "formula").mark_line()
    points = base.transform_filter(alt.datum.how == "measured").mark_point(size=70, filled=True)
    return (lines + points).properties(height=280)


def kv_models_chart(points: Sequence[inf.KvPoint]) -> alt.Chart:
    data = pd.DataFrame(
        [{"model": p.model, "tokens": p.tokens, "GB": p.bytes / 1e9} for p in points]
    )
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "tokens:Q",
                title="context length (tokens, log scale)",
                scale=alt.Scale(type="log", base=2),
            ),
            y=alt.Y(
                "GB:Q", title="KV cache per sequence (GB, log scale)", scale=alt.Scale(type="log")
            ),
            color=alt.Color(
                "model:N",
                title=None,
                # below the plot: at the right it left a phone's plot 100 px wide
                legend=alt.Legend(
                    orient="bottom", columns=fitting_columns(data["model"].unique()), labelLimit=300
                ),
            ),
            tooltip=["model", "tokens", alt.Tooltip("GB:Q", format=".4f")],
        )
        .properties(height=320)
    )


def budget_chart(prompt_tokens: int, context: int, budget: int) -> alt.LayerChart:
    data = pd.DataFrame(
        [
            {"what": "model's context length", "tokens": context},
            {"what": "your prompt", "tokens": prompt_tokens},
            {"what": "truncation budget", "tokens": budget},
        ]
    )
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("what:N", title=None, sort=None, axis=alt.Axis(labelLimit=250)),
            x=alt.X("tokens:Q", title="tokens"),
            color=alt.Color(
                "what:N", legend=None, scale=alt.Scale(range=["#adb5bd", "#4C6EF5", "#e8590c"])
            ),
            tooltip=["what", alt.Tooltip("tokens:Q", format=",")],
        )
    )
    text = bars.mark_text(align="left", dx=4).encode(text=alt.Text("tokens:Q", format=","))
    return (bars + text).properties(height=140)


NEEDLE_ROW_PX = 40  # one haystack length per row: room for a line of answer text
NEEDLE_NOTE = (
    "Each cell prints the model's answer; an answer longer than its cell is cut with '…' "
    "(on a narrow screen most are): hover a cell for the whole answer, the secret and the time."
)


def needle_chart(trials: Sequence[context_window.NeedleTrial]) -> alt.LayerChart:
    """Recall by needle depth (x) and haystack length (y): found = filled cell."""
    data = pd.DataFrame(
        [
            {
                "depth": f"{t.depth:.0%}",
                "d": t.depth,
                "length": t.length,
                "tokens": t.tokens,
                "recall": 1.0 if t.found else 0.0,
                "answer": visible(t.answer)[:40],
                "secret": t.secret,
                "asked": t.key,
                "gave": t.picked or "",
                "seconds": round(t.seconds, 1),
            }
            for t in trials
        ]
    )
    base = alt.Chart(data).encode(
        x=alt.X(
            "depth:N",
            title="needle depth in the haystack",
            sort=alt.SortField("d"),
            axis=alt.Axis(labelAngle=0, labelAlign="center"),
        ),
        y=alt.Y("length:O", title="haystack length (tokens)", sort="descending"),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "recall:Q", title="recall", scale=alt.Scale(domain=[0, 1], range=["#ffe3e3", "#2f9e44"])
        ),
        tooltip=["length", "tokens", "depth", "asked", "secret", "answer", "gave", "seconds"],
    )
    # an answer longer than its cell is cut with an ellipsis (the tooltip has it whole)
    # the fill runs from pale red (0) to dark green (1) on a fixed domain: white text on green
    labels = base.mark_text(limit=alt.expr("bandwidth('x') - 6")).encode(
        text=alt.Text("answer:N"),
        color=alt.condition("datum.recall > 0.5", alt.value("#ffffff"), alt.value("#222222")),
    )
    # a fixed row height: rows never shrink below one line of text, however many lengths
    return (cells + labels).properties(height=alt.Step(NEEDLE_ROW_PX))


def noisy_times_note(df: pd.DataFrame) -> str:
    """A sentence for a sweep whose times fall with length somewhere (measured under load, a
    32-token pass took 4.5 s and a 128-token one 1.5 s, under a caption saying time grows with
    length); empty when every longer pass took at least 0.8 times the shorter one's time."""
    rows = list(df.sort_values("tokens").itertuples())
    for i, short in enumerate(rows):
        for long in rows[i + 1 :]:
            if long.seconds < 0.8 * short.seconds:
                return (
                    f" This run's times do not grow with length: {long.tokens} tokens took "
                    f"{long.seconds * 1000:,.0f} ms, less than {short.tokens} tokens "
                    f"({short.seconds * 1000:,.0f} ms); timings on cores other learners share "
                    "are noisy. Press Measure again."
                )
    return ""


def cost_section(lm, geo, context: int, width: int) -> None:
    """Forward time and memory against length: the measured sweep behind a button."""
    model_id = lm.model_id
    st.subheader("Forward time and memory against length, measured")
    f1, f2 = st.columns([3, 1])
    longest = f1.select_slider(
        "Longest sequence",
        [n for n in (128, 256, 512, 1024, 2048) if n <= context],
        value=min(512, context),
        key="context_window.longest",
        help=f"One forward pass at 32, 64, … tokens of filler, up to this (cap {inf.FORWARD_CAP}).",
    )
    df = forward_costs_job(model_id, longest)
    if df is None:
        f2.caption("Measured on request: one pass per length.")
        return
    a, b = st.columns(2)
    draw_chart(forward_time_chart(df), where=a)
    draw_chart(memory_chart(df), where=b)
    match = bool(
        (df.scores_bytes == df.scores_formula).all() and (df.kv_bytes == df.kv_formula).all()
    )
    st.caption(
        "Left: wall time of one forward pass; on a CPU at these lengths the weights dominate, so "
        "time grows nearly linearly and the n² term only starts to show at the long end. Right: "
        "the bytes of the tensors the model actually built (points), measured from the attention "
        "weights of each layer and from the cache it returned, against heads × T² × "
        f"{width} B and {geo.cache_bytes_per_token(width):,} B × T (lines). "
        + (
            "Every measurement equals its formula."
            if match
            else "Some measurements differ from the formula (see the table)."
        )
        + noisy_times_note(df)
    )
    with st.expander("The measurements"):
        st.dataframe(df, hide_index=True, width="stretch")


@st.fragment
def kv_sizes_section(lm) -> None:
    """KV-cache bytes against length for published models and the selected one."""
    model_id = lm.model_id
    st.subheader("KV-cache memory against length, for several model sizes")
    dtype = st.radio(
        "Numbers stored as",
        list(inf.DTYPE_BYTES),
        index=1,
        horizontal=True,
        key="context_window.dtype",
        bind="query-params",
    )
    models = list(inf.published_models())
    if not any(m.name.split(" ")[0] in model_id for m in models):
        models.append(inf.PublishedModel(f"{model_id} (selected)", "its loaded config", lm.config))
    draw_chart(kv_models_chart(inf.kv_memory_curve(models, inf.DTYPE_BYTES[dtype])))
    table = pd.DataFrame(
        [
            {
                "model": m.name,
                "layers": (g := geometry(m.config)).n_layers,
                "query heads": g.n_heads,
                "KV heads": g.n_kv_heads,
                "head size": g.head_dim,
                "bytes per token": g.cache_bytes_per_token(inf.DTYPE_BYTES[dtype]),
                "context": g.context,
                "GB at full context": inf.kv_cache_bytes(
                    m.config, g.context, inf.DTYPE_BYTES[dtype]
                )
                / 1e9,
                "hyper-parameters from": m.source,
            }
            for m in models
        ]
    )
    st.dataframe(
        table.drop(columns=["hyper-parameters from"]),
        hide_index=True,
        width="stretch",
        column_config={
            "GB at full context": st.column_config.NumberColumn("GB, full context", format="%.3f"),
            "bytes per token": st.column_config.NumberColumn("bytes / token"),
        },
    )
    st.caption(sources_line(table["model"], table["hyper-parameters from"]))
    st.caption(
        "Each curve stops at that model's own context length. Grouped-query attention "
        "(fewer KV heads than query heads, as in Llama-3 and SmolLM2) shrinks the cache: "
        "Llama-3-8B keeps a quarter of Llama-2-7B's bytes per token."
    )


NEEDLE_DISTRACTOR_OPTIONS = (0, 2, 5, 10)
# The defaults: 15 trials, estimated 52 s idle (57 s measured on 2 shared cores). With seed 0
# they give 11 of 15 recalled with 10 similar facts, every miss a distractor's number, and 15 of
# 15 with none (tests/test_context_window.py checks the mix; the page computes its own text).
NEEDLE_DEFAULT_LENGTHS = (256, 512, 1024)
NEEDLE_DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
NEEDLE_DEFAULT_DISTRACTORS = 10


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def needle_haystack_tokens(
    model_id: str, lengths: tuple[int, ...], depths: tuple[float, ...], distractors: int
) -> list[tuple[int, float]]:
    """(tokens, depth) of every haystack the probe will build, distractors included: what its
    estimate is computed from (the tokenizer only, no model run)."""
    lm = load_model(model_id)
    hays = context_window.needle_haystacks(
        lm.tokenizer,
        lengths,
        depths,
        inf.context_length(lm.config),
        context_window.NEEDLE_SEED,
        distractors,
    )
    return [(h.tokens, h.depth) for h in hays]


def needle_summary(trials: Sequence[context_window.NeedleTrial]) -> str:
    """What the run shows, computed from its trials: recalls, what the misses answered, and
    recall by depth and by length."""
    found = sum(t.found for t in trials)
    misses = [t for t in trials if not t.found]
    picked = sum(t.picked is not None for t in misses)
    text = f"{found} of {len(trials)} recalled. "
    if not misses:
        text += "No miss: every answer was the asked key's number. "
    elif picked == len(misses):
        text += (
            f"Every miss ({len(misses)}) answered with a distractor's number: the model found a "
            "fact of the right shape but bound the wrong key to it. "
        )
    else:
        text += (
            f"{picked} of the {len(misses)} misses answered with a distractor's number (the "
            "wrong key bound); the others gave a number that is in no fact. "
        )

    def by(attr: str, fmt) -> str:
        groups: dict = {}
        for t in trials:
            groups.setdefault(getattr(t, attr), []).append(t.found)
        return ", ".join(f"{fmt(k)}: {sum(v)}/{len(v)}" for k, v in sorted(groups.items()))

    return (
        text
        + f"Recalled by depth: {by('depth', lambda d: f'{d:.0%}')}. "
        + f"By haystack length: {by('length', lambda n: f'{n:,}')}."
    )


def needle_misses_table(trials: Sequence[context_window.NeedleTrial]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {  # the binding failure first: on a phone the later columns scroll
                "asked for": t.key,
                "its number": t.secret,
                "the fact whose number it gave": t.picked or "(none)",
                "answer": visible(t.answer),
                "length": t.length,
                "depth": f"{t.depth:.0%}",
            }
            for t in trials
            if not t.found
        ]
    )


def needle_section(lm, context: int) -> None:
    """The needle-in-a-haystack grid, run as a job; the recall and the chart of its trials."""
    model_id = lm.model_id
    # Not an st.fragment: a click inside a fragment never interrupts a running script, so the
    # job's Stop would only take effect after every trial had run.
    st.subheader("Needle in a haystack, measured on this model")
    st.markdown(
        "One fact, the needle, such as *“The locker number is 30519.”* (a random key and "
        "5-digit number per trial), is hidden at some depth of a filler text of a given length. "
        "The filler can also hold **similar facts** with other keys and numbers (*“The bus "
        "number is 48213.”*), spread evenly. The model is asked for the needle's key (*“What is "
        "the locker number in the text above?”*), greedily, its answer started with *“The "
        f"locker number is”* and {context_window.NEEDLE_NEW_TOKENS} new tokens. A cell is green "
        "when the first number it writes is the needle's."
    )
    n1, n2 = st.columns(2)
    options = [n for n in (128, 256, 512, 1024, 2048) if n <= context - 96]
    lengths = n1.multiselect(
        "Haystack lengths (tokens)",
        options,
        default=[n for n in NEEDLE_DEFAULT_LENGTHS if n in options] or options[:1],
        key="context_window.needle_lengths",
    )
    depths = n2.multiselect(
        "Needle depths (% of the haystack)",
        [0.0, 0.25, 0.5, 0.75, 1.0],
        default=list(NEEDLE_DEFAULT_DEPTHS),
        format_func=lambda d: f"{d * 100:.0f}",  # short chips: all five fit on a phone
        key="context_window.needle_depths",
    )
    distractors = st.radio(
        "Similar facts in the haystack",
        NEEDLE_DISTRACTOR_OPTIONS,
        index=NEEDLE_DISTRACTOR_OPTIONS.index(NEEDLE_DEFAULT_DISTRACTORS),
        horizontal=True,
        key="context_window.distractors",
        bind="query-params",
        help="Facts shaped like the needle, with other keys and numbers (as in RULER's "
        "multi-key needle tests).",
    )
    st.caption(
        "With no similar fact the needle holds the only number in the text, and copying it is "
        "easy; each similar fact makes the model tell which number belongs to the asked key. "
        "They take the place of filler, so a haystack keeps its length and its cost."
    )
    grid = context_window.needle_grid(lengths, depths, context)
    if not grid:
        st.info("Pick at least one length and one depth.")
        return
    longest = st.session_state.get("context_window.longest", min(512, context))
    costs = cached_forward_costs(model_id, longest)
    measured = finished_result(("context_window", "forward", model_id, longest)) is not None
    key_lengths = tuple(sorted(set(lengths)))
    key_depths = tuple(sorted(set(depths)))
    estimate = context_window.needle_estimate_s(
        needle_haystack_tokens(model_id, key_lengths, key_depths, distractors),
        [context_window.ForwardCost(**r) for r in costs.to_dict("records")],
    )
    trials = run_job(
        ("context_window.needle", model_id, key_lengths, key_depths, distractors),
        just_ran(
            lambda report: context_window.needle_trials(
                lm, lengths, depths, context_window.NEEDLE_SEED, report, distractors
            )
        ),
        start_label=f"Run {len(grid)} trials",
        estimate_s=estimate,
        caps=f"At most {context_window.NEEDLE_TRIALS_CAP} trials and "
        f"{context_window.NEEDLE_LENGTH_CAP} tokens per haystack; the estimate prices each "
        "haystack's own length, distractors included, "
        + (
            "with the forward passes measured above."
            if measured
            else "at about 300 tokens a second (measure the forward passes above to price "
            "them on this machine)."
        ),
        on_partial=lambda done: draw_chart(needle_chart(done)),
    )
    if trials:
        found = sum(t.found for t in trials)
        st.metric("Recall", f"{found / len(trials):.0%}", help=f"{found} of {len(trials)} trials")
        if not drawn_live():  # the live view above already shows a run that just ended
            draw_chart(needle_chart(trials))
        st.caption(NEEDLE_NOTE)
        st.markdown(needle_summary(trials))
        misses = needle_misses_table(trials)
        if len(misses):
            st.dataframe(misses, hide_index=True, width="stretch")
    else:
        st.caption(
            "Press the button: the model answers each trial live, and Stop ends the run "
            "within the trial it is on."
        )


JUST_RAN = "context.needle_just_ran"


def just_ran(work):
    """`work`, marking that its live chart (run_job's on_partial, drawn with every trial up to
    the last) already shows the result this script run: `drawn_live` then skips the second copy."""

    def marked(report):
        value = work(report)
        st.session_state[JUST_RAN] = True
        return value

    return marked


def drawn_live() -> bool:
    return bool(st.session_state.pop(JUST_RAN, False))
