from __future__ import annotations

from itertools import chain

import streamlit as st

from components import inference_loop as il
from components.charts import draw_chart
from components.frame import page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from components.tokens import escape_markdown, token_strip
from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.inspect.trace import prompt_tokens, token_strings
from core.runtime.generation import GENERATION_CAP, DecodingSettings, generate_stream
from core.runtime.quantize import int8_available, int8_model, linear_share

PROMPT_CAP = 256  # prompt tokens this page feeds the model
STEP_CAP = 64  # new tokens per run, at most

page_frame()
st.markdown(
    "A language model writes **one token at a time**: it reads the whole sequence, picks the "
    "next token, appends it and goes round again. The first step, the **prefill**, reads every "
    "prompt token at once. Each later **decode** step only needs the new token, because every "
    "layer keeps the keys and values it already computed for earlier tokens: the **KV cache**. "
    "It trades memory for time: it grows by the same number of bytes with every token, "
    "2 × layers × key/value heads × head size × bytes per number. Step through it below, then "
    "see what a token costs with and without the cache."
)

lm, prompt = model_page()
model_id = lm.model_id
geo = geometry(lm.config)
width = inf.model_dtype_bytes(lm.model)
pt = prompt_tokens(lm.tokenizer, prompt, PROMPT_CAP)
note_truncation(pt.truncated_from, len(pt.ids))

c1, c2, c3 = st.columns([2, 2, 1.4])
max_new = c1.slider(
    "Tokens to generate",
    1,
    STEP_CAP,
    24,
    key="inference.max_tokens",
    bind="query-params",
    help=f"Capped at {STEP_CAP} so a run takes seconds.",
)
temperature = c2.slider(
    "Temperature (0 = greedy)",
    0.0,
    1.5,
    0.0,
    0.05,
    key="inference.temperature",
    bind="query-params",
)
fast_ok = int8_available() and linear_share(lm.model) > 0.5
fast = fast_ok and c3.toggle(
    "Fast mode (int8)",
    key="inference.int8",
    bind="query-params",
    disabled=not fast_ok,
    help="Generate with a copy of the model whose linear layers (all but the MLP's output "
    "projections) hold 8-bit integers instead of 32-bit floats: far fewer bytes to read per "
    "token. Compare the timings below; the last section measures what it changes.",
)
settings = DecodingSettings(temperature=temperature, max_new_tokens=max_new, stop_at_eos=True)
eos = il.eos_ids(lm)
il.reset_steps((model_id, pt.ids, settings, fast), pt.ids)

b1, b2, b3 = st.columns([1, 1, 4])
b1.button(
    "Step",
    key="inference.step",
    type="primary",
    disabled=il.finished(settings, eos),
    help="Generate one more token.",
    on_click=il.step_once,
    args=(model_id, settings, fast),
)
run_clicked = b2.button(
    "Run",
    key="inference.run",
    disabled=il.finished(settings, eos),
    help=f"Generate the rest, up to {max_new} tokens, streamed.",
)
if b3.button("Reset", key="inference.reset"):
    il.reset_steps((model_id, pt.ids, settings, fast), pt.ids, force=True)

st.markdown("**Output** (prompt in grey, new tokens streamed as they are chosen)")
out = st.container(border=True)
out.caption(escape_markdown(lm.tokenizer.decode(list(pt.ids))[-600:]))
done_text = "".join(s.text for s in st.session_state[il.STEPS])
if run_clicked:
    out.write_stream(
        chain(
            [escape_markdown(done_text)],
            (escape_markdown(s.text) for s in il.take_steps(model_id, settings, max_new, fast)),
        )
    )
    st.rerun()  # redraw the buttons and tables with the finished run
elif done_text:
    out.markdown(escape_markdown(done_text))
else:
    out.caption("Press **Step** for one token or **Run** for the rest.")

steps = st.session_state[il.STEPS]
if steps:
    df = il.steps_frame(steps, lm.config, width)
    prefill = steps[0]
    decode = df[df["phase"] == "decode"]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Prefill",
        f"{prefill.seconds * 1000:.0f} ms",
        help=f"Read all {len(pt.ids)} prompt tokens in one pass.",
    )
    m2.metric(
        "Decode, mean per token",
        f"{decode['ms'].mean():.0f} ms" if len(decode) else "–",
        help="With int8 weights (fast mode)" if fast else "With float32 weights",
    )
    m3.metric("Last token's probability", f"{steps[-1].prob:.1%}")
    m4.metric(
        "KV cache now",
        f"{df['KV cache bytes'].iloc[-1]:,} B",
        help=f"{df['tokens in cache'].iloc[-1]} tokens × "
        f"{geo.cache_bytes_per_token(width):,} B per token",
    )
    ids = st.session_state[il.IDS]
    token_strip(
        list(token_strings(lm.tokenizer, ids[len(pt.ids) :])),
        values=[min(1.0, s.prob) for s in steps],
        titles=[f"p = {s.prob:.3f}" for s in steps],
    )
    st.caption("New tokens, coloured by the probability the model gave them (hover for it).")
    draw_chart(il.kv_growth_chart(df))
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "probability": st.column_config.NumberColumn(format="%.3f"),
            "ms": st.column_config.NumberColumn(format="%.1f"),
        },
    )
st.caption(
    f"This model: {geo.n_layers} layers × {geo.n_kv_heads} key/value heads "
    f"(for {geo.n_heads} query heads) × head size {geo.head_dim} × 2 (K and V) × "
    f"{width} bytes = **{geo.cache_bytes_per_token(width):,} bytes per token** of cache, read from its "
    "config."
)

st.subheader("What the cache saves: milliseconds per token, measured")


@st.fragment
def timing() -> None:
    n = st.slider(
        "Tokens to time",
        8,
        inf.TIMING_CAP // 2,
        16,
        8,
        key="inference.timing_tokens",
        help=f"Greedy, with and without the cache; capped at {inf.TIMING_CAP // 2}.",
    )
    c = il.token_timings_job(model_id, pt.ids, n)
    if c is None:
        st.caption(
            "Each run generates the same greedy tokens twice: once reading only the new "
            "token per step (with the cache), once re-reading the whole sequence."
        )
        return
    k1, k2, k3 = st.columns(3)
    k1.metric("With the cache", f"{c.cached_ms:.0f} ms/token")
    k2.metric("Without the cache", f"{c.uncached_ms:.0f} ms/token")
    k3.metric("Speed-up", f"{c.speedup:.2f}×")
    draw_chart(il.ms_per_token_chart(il.token_timings_frame(c)))
    st.caption(
        "Decode steps only (the prefill is the same for both). Without the cache every step "
        "re-reads the whole sequence, so its cost climbs with the position; with it, each step "
        "reads one token. Both runs chose "
        + ("the same tokens." if c.same_tokens else "different tokens (numerical noise).")
        + f" Measured live on this machine, shared with other users; generation is capped at "
        f"{GENERATION_CAP} tokens everywhere."
    )


timing()

il.fast_mode_section(lm, pt.ids, fast_ok)
show_code(generate_stream, inf.kv_cache_bytes, geometry, inf.compare_cache, int8_model)

check_yourself()
