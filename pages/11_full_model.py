"""11 Stacking Layers (The Full Model): the residual stream through every block, and model sizes from configs."""

from __future__ import annotations

import streamlit as st

from components import full_model as fm
from components.charts import draw_chart, sources_line
from components.frame import intro, page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from core.full_model import LENS_WINDOW, logit_lens
from core.inspect.anatomy import geometry
from core.inspect.trace import TRACE_TOKEN_CAP, prompt_tokens
from core.shared.published import count_parameters, parameter_count

page_frame()
with intro():
    st.markdown(
        "An LLM is an embedding table, a stack of identical blocks, a final norm and an "
        "**unembedding** (lm_head) that turns the last vector into a score for every token. "
        "Every block adds to the same residual stream, so we can stop anywhere and ask: if the "
        "model had to answer now, what would it say? That is the **logit lens**: the final norm "
        "and lm_head applied to each layer's hidden state. Early layers mostly echo the current "
        "token; the answer forms in the upper layers, and the last row is exactly the model's "
        "own prediction. Bigger models are this same recipe with more and wider blocks."
    )

lm, text = model_page("decoder")
pt = prompt_tokens(lm.tokenizer, text, TRACE_TOKEN_CAP)
T = len(pt.ids)
note_truncation(pt.truncated_from, T)
vocab = lm.config.vocab_size
st.caption(
    f"The lens shows {LENS_WINDOW} positions at a time: each cell scores all {vocab:,} "
    "tokens of the vocabulary, for every layer."
)
last_start = max(0, T - LENS_WINDOW)
if st.session_state.get("full_model.start", 0) > last_start:  # a shorter prompt arrived
    del st.session_state["full_model.start"]  # back to the default: the last window


@st.fragment
def lens_view() -> None:
    if last_start > 0:
        start = st.slider(
            "First position of the window",
            0,
            last_start,
            value=last_start,
            key="full_model.start",
            bind="query-params",
            help=f"The prompt has {T} tokens; the lens shows {LENS_WINDOW}.",
        )
    else:
        start = 0
    lens = fm.cached_logit_lens(lm.model_id, text, start, LENS_WINDOW)
    n_layers = lens.top_ids.shape[0] - 1
    draw_chart(fm.lens_chart(fm.lens_frame(lens)))
    right, known = lens.final_hits, lens.known_next
    st.caption(
        f"Each cell: the top guess for the token after that position, shaded by its "
        f"probability; hover for the top 5 and the token that really follows. Top row "
        f"(layer {n_layers}) = the model's output: it guessed {right} of {known} next tokens "
        f"right here. Largest difference between that row's logits and the model's: "
        f"{lens.final_logits_error:.1e}. {fm.LENS_NARROW_NOTE}"
    )
    st.subheader("The residual stream grows as blocks add to it")
    draw_chart(fm.residual_norm_chart(fm.residual_norm_frame(lens)))
    st.caption(
        "Length of each token's vector after every block (grey: one line per token, "
        "orange: median). The final norm rescales it before lm_head, which is why the "
        "lens applies that norm at every layer."
    )


lens_view()

st.subheader("Model sizes, computed from their configurations")
sizes = fm.cached_model_sizes(lm.model_id)
c1, c2 = st.columns([3, 2], gap="large")
with c1:
    draw_chart(fm.model_sizes_chart(sizes))
with c2:
    loaded = sizes[sizes["loaded"]]
    real = count_parameters(lm.model)
    if len(loaded):
        st.metric(
            "loaded model, from its config",
            f"{int(loaded['parameters'].iloc[0]):,}",
            help="Same formula as the others, fed the loaded model's config.json.",
        )
        st.caption(f"Counted on the loaded weights: {real:,}.")
    else:
        st.caption(
            f"No size formula for this model's family; its weights hold {real:,} parameters."
        )
    st.markdown(
        "Per block: attention 4·d² (fewer with grouped key/value heads), MLP 2·d·d_ff (GPT-2) "
        "or 3·d·d_ff (SwiGLU), plus norms; then vocabulary × d for the embeddings, once more "
        "if lm_head is not tied, and position rows for GPT-2. Hover a bar for its config."
    )
st.dataframe(  # the sources below it, so that every column fits a projector uncut
    sizes.drop(columns=["loaded", "billions", "source"]),
    hide_index=True,
    width="stretch",
    column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "embeddings %": st.column_config.NumberColumn(format="%.1f"),
    },
)
st.caption(sources_line(sizes["model"], sizes["source"]))
show_code(logit_lens, geometry, parameter_count)

check_yourself()
