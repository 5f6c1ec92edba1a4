"""18 The Inference Loop: generation one token at a time, with and without the KV cache, timed."""

from __future__ import annotations

from itertools import chain

import streamlit as st

from components import inference_loop as il
from components.frame import intro, page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from components.tokens import escape_markdown
from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.inspect.trace import prompt_tokens
from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.quantize import int8_available, int8_model, linear_share
from core.shared.chat import eos_ids

PROMPT_CAP = 256  # prompt tokens this page feeds the model
STEP_CAP = 64  # new tokens per run, at most

page_frame()
with intro():
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
    key="inference_loop.max_tokens",
    bind="query-params",
    help=f"Capped at {STEP_CAP} so a run takes seconds.",
)
temperature = c2.slider(
    "Temperature (0 = greedy)",
    0.0,
    1.5,
    0.0,
    0.05,
    key="inference_loop.temperature",
    bind="query-params",
)
fast_ok = int8_available() and linear_share(lm.model) > 0.5
fast = fast_ok and c3.toggle(
    "Fast mode (int8)",
    key="inference_loop.int8",
    bind="query-params",
    disabled=not fast_ok,
    help="Generate with a copy of the model whose linear layers (all but the MLP's output "
    "projections) hold 8-bit integers instead of 32-bit floats: far fewer bytes to read per "
    "token. Compare the timings below; the last section measures what it changes.",
)
settings = DecodingSettings(temperature=temperature, max_new_tokens=max_new, stop_at_eos=True)
eos = set(eos_ids(lm))
il.reset_steps((model_id, pt.ids, settings, fast), pt.ids)

b1, b2, b3 = st.columns([1, 1, 4])
b1.button(
    "Step",
    key="inference_loop.step",
    type="primary",
    disabled=il.finished(settings, eos),
    help="Generate one more token.",
    on_click=il.step_once,
    args=(model_id, settings, fast),
)
run_clicked = b2.button(
    "Run",
    key="inference_loop.run",
    disabled=il.finished(settings, eos),
    help=f"Generate the rest, up to {max_new} tokens, streamed.",
)
if b3.button("Reset", key="inference_loop.reset"):
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
il.steps_section(lm, steps, len(pt.ids), width, fast)
st.caption(
    f"This model: {geo.n_layers} layers × {geo.n_kv_heads} key/value heads "
    f"(for {geo.n_heads} query heads) × head size {geo.head_dim} × 2 (K and V) × "
    f"{width} bytes = **{geo.cache_bytes_per_token(width):,} bytes per token** of cache, read from its "
    "config."
)

st.subheader("What the cache saves: milliseconds per token, measured")
il.timing_section(model_id, pt.ids)

il.fast_mode_section(lm, pt.ids, fast_ok)
show_code(generate_stream, inf.kv_cache_bytes, geometry, inf.compare_cache, int8_model)

check_yourself()
