from __future__ import annotations

import pandas as pd
import streamlit as st

from components import context_window as cw
from components.charts import draw_chart
from components.frame import page_frame, show_code
from components.jobs import run_job
from components.models import get_prompt
from components.preamble import model_page
from components.questions import check_yourself
from components.tokens import token_strip
from core import context_window
from core import inference_loop as inf
from core.inspect.anatomy import geometry

SHOWN_CAP = 400  # tokens drawn as chips

page_frame()
st.markdown(
    "A model can only attend to a fixed number of tokens, its **context window**: positions "
    "beyond what it was trained on are unknown to it. Longer inputs cost more: every token "
    "attends to every earlier one, so each layer builds a T × T table of attention scores "
    "(it grows as n²), and the KV cache grows by a fixed number of bytes per token. A prompt "
    "that does not fit must be **truncated**, and what you cut decides what the model can "
    "still see. Finally, fitting in the window is not the same as *using* it: the "
    "needle-in-a-haystack probe tests whether the model finds one fact hidden in filler."
)

lm, _ = model_page(prompt=False)  # an empty prompt gets this page's own filler text below
model_id = lm.model_id
geo = geometry(lm.config)
context = inf.context_length(lm.config)
width = inf.model_dtype_bytes(lm.model)
prompt = get_prompt()
ids = cw.cached_token_count(model_id, prompt)
if not ids:
    st.info(
        "The shared prompt is empty: write something in the sidebar to see it truncated. "
        "Until then the page uses a short filler text."
    )
    ids = tuple(context_window.filler_ids(lm.tokenizer, 24))

st.subheader("Your prompt against the context window")
c1, c2 = st.columns([2, 3])
budget = c1.slider(
    "Token budget",
    4,
    512,
    12,
    key="context.budget",
    bind="query-params",
    help="How many tokens you allow the model to see (at most 512 here).",
)
strategy = c2.radio(
    "Truncation",
    list(context_window.STRATEGIES),
    format_func=context_window.STRATEGIES.get,
    key="context.strategy",
    horizontal=True,
    bind="query-params",
)
cut = context_window.truncate(ids, budget, strategy)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Prompt tokens", f"{len(ids):,}")
m2.metric("Context length", f"{context:,}", help="From the model's config.")
m3.metric("Share of the window", f"{len(ids) / context:.2%}")
m4.metric("Tokens kept / dropped", f"{len(cut.kept):,} / {cut.dropped:,}")
draw_chart(cw.budget_chart(len(ids), context, budget))
if len(ids) > context:
    st.warning(
        f"This prompt is longer than the model's {context:,}-token context: "
        "it has to be truncated before the model can read it."
    )
kept = set(cut.kept_positions)
shown = range(min(len(ids), SHOWN_CAP))
token_strip(
    [lm.tokenizer.decode([ids[i]]) for i in shown],
    values=[0.55 if i in kept else -0.55 for i in shown],
    titles=["kept" if i in kept else "dropped" for i in shown],
)
st.caption(
    "Orange tokens are kept, blue ones dropped"
    + (f" (first {SHOWN_CAP} tokens drawn)." if len(ids) > SHOWN_CAP else ".")
)
if cut.dropped == 0:
    st.info(
        f"The prompt ({len(ids)} tokens) fits in the budget of {budget}: nothing is cut. "
        "Lower the budget or lengthen the prompt."
    )
st.markdown("**What the model then sees**")
st.text(lm.tokenizer.decode(list(cut.kept))[:4000] or "(nothing)")


@st.fragment
def cost() -> None:
    st.subheader("Forward time and memory against length, measured")
    f1, f2 = st.columns([3, 1])
    longest = f1.select_slider(
        "Longest sequence",
        [n for n in (128, 256, 512, 1024, 2048) if n <= context],
        value=min(512, context),
        key="context.longest",
        help=f"One forward pass at 32, 64, … tokens of filler, up to this (cap {inf.FORWARD_CAP}).",
    )
    df = cw.forward_costs_job(model_id, longest)
    if df is None:
        f2.caption("Measured on request: one pass per length.")
        return
    a, b = st.columns(2)
    draw_chart(cw.forward_time_chart(df), where=a)
    draw_chart(cw.memory_chart(df), where=b)
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
    )
    with st.expander("The measurements"):
        st.dataframe(df, hide_index=True, width="stretch")


cost()


@st.fragment
def kv_sizes() -> None:
    st.subheader("KV-cache memory against length, for several model sizes")
    dtype = st.radio(
        "Numbers stored as",
        list(inf.DTYPE_BYTES),
        index=1,
        horizontal=True,
        key="context.dtype",
        bind="query-params",
    )
    models = list(inf.published_models())
    if not any(m.name.split(" ")[0] in model_id for m in models):
        models.append(inf.PublishedModel(f"{model_id} (selected)", "its loaded config", lm.config))
    draw_chart(cw.kv_models_chart(inf.kv_memory_curve(models, inf.DTYPE_BYTES[dtype])))
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
        table,
        hide_index=True,
        width="stretch",
        column_config={"GB at full context": st.column_config.NumberColumn(format="%.3f")},
    )
    st.caption(
        "Each curve stops at that model's own context length. Grouped-query attention "
        "(fewer KV heads than query heads, as in Llama-3 and SmolLM2) shrinks the cache: "
        "Llama-3-8B keeps a quarter of Llama-2-7B's bytes per token."
    )


kv_sizes()


def needle() -> None:
    # Not an st.fragment: a click inside a fragment never interrupts a running script, so the
    # job's Stop would only take effect after every trial had run.
    st.subheader("Needle in a haystack, measured on this model")
    st.markdown(
        "A sentence *“The secret number is …”* with a random 5-digit number is hidden at some "
        "depth of a filler text of a given length; the model is asked for the number (greedy, "
        f"{inf.NEEDLE_NEW_TOKENS} new tokens). A cell is green when the first number it writes is "
        "the secret."
    )
    n1, n2 = st.columns(2)
    options = [n for n in (128, 256, 512, 1024, 2048) if n <= context - 96]
    lengths = n1.multiselect(
        "Haystack lengths (tokens)", options, default=options[:2], key="context.needle_lengths"
    )
    depths = n2.multiselect(
        "Needle depths",
        [0.0, 0.25, 0.5, 0.75, 1.0],
        default=[0.0, 0.5, 1.0],
        format_func=lambda d: f"{d:.0%}",
        key="context.needle_depths",
    )
    grid = context_window.needle_grid(lengths, depths, context)
    if not grid:
        st.info("Pick at least one length and one depth.")
        return
    longest = st.session_state.get("context.longest", min(512, context))
    costs = cw.cached_forward_costs(model_id, longest, st.session_state.get("context.run_id", 0))
    estimate = context_window.needle_estimate_s(
        grid, [context_window.ForwardCost(**r) for r in costs.to_dict("records")]
    )
    trials = run_job(
        ("context.needle", model_id, tuple(sorted(set(lengths))), tuple(sorted(set(depths)))),
        lambda report: context_window.needle_trials(lm, lengths, depths, len(grid), report),
        start_label=f"Run {len(grid)} trials",
        estimate_s=estimate,
        caps=f"At most {inf.NEEDLE_TRIALS_CAP} trials and {inf.NEEDLE_LENGTH_CAP} tokens per "
        "haystack; the estimate comes from the forward passes measured above.",
        on_partial=lambda done: draw_chart(cw.needle_chart(done)),
    )
    if trials:
        found = sum(t.found for t in trials)
        st.metric("Recall", f"{found / len(trials):.0%}", help=f"{found} of {len(trials)} trials")
        draw_chart(cw.needle_chart(trials))
        st.caption(cw.NEEDLE_NOTE)
    else:
        st.caption(
            "Press the button: the model answers each trial live, and Stop ends the run "
            "within the trial it is on."
        )


needle()
show_code(
    context_window.truncate,
    inf.kv_cache_bytes,
    context_window.forward_cost,
    context_window.needle_probe,
)

check_yourself()
