"""10 The Transformer Block: one block's attention, MLP, residuals and norms measured on the prompt."""

from __future__ import annotations

import streamlit as st

from components import block as cb
from components.charts import draw_chart, graph_colours
from components.frame import intro, page_frame, show_code
from components.preamble import model_page, note_truncation
from components.questions import check_yourself
from core.block import block_anatomy, model_parameters, rebuild_block
from core.inspect.hooks import capture_outputs
from core.inspect.trace import TRACE_TOKEN_CAP

page_frame()
with intro():
    st.markdown(
        "A transformer is the same block repeated. Each block reads the **residual stream** x (one "
        "vector per token), and adds two updates to it: first **attention** (tokens exchange "
        "information), then the **MLP** (each token is processed on its own). Before each update "
        "a **norm** rescales the vectors so the update sees inputs of a steady size; the stream "
        "itself is never normalised, only added to: x → x + a → x + a + m. Below is the loaded "
        "model's own block, its parts named as in its code, with your prompt's numbers at every "
        "step, and a check that adding the parts back together gives exactly the next layer's "
        "hidden state."
    )

lm, text = model_page("block")
anatomy = cb.cached_block_anatomy(lm.model_id, text)
totals, rows = cb.cached_parameters(lm.model_id)
note_truncation(anatomy.truncated_from, len(anatomy.tokens))
st.caption(
    f"Runs on at most the first {TRACE_TOKEN_CAP} tokens of the shared prompt (here "
    f"{len(anatomy.tokens)})."
)
n_layers = anatomy.n_layers
if st.session_state.get("block.layer", 0) > n_layers - 1:  # a smaller model was picked
    st.session_state["block.layer"] = n_layers - 1
params_df = cb.params_frame(rows)
part_params = params_df.groupby("part")["parameters"].sum().to_dict()


@st.fragment
def one_block() -> None:
    layer = st.slider(
        "Block (layer)",
        0,
        n_layers - 1,
        key="block.layer",
        bind="query-params",
        help=f"{lm.model_id} has {n_layers} blocks of this shape.",
    )
    left, right = st.columns(2, gap="medium")  # the diagram needs ~380 px uncut
    with left:
        st.markdown(
            f"**{anatomy.block_class}** number {layer} of {n_layers}, "
            f"on {len(anatomy.tokens)} tokens"
        )
        st.graphviz_chart(cb.block_diagram_dot(anatomy, layer, part_params, graph_colours()))
    with right:
        m1, m2, m3 = st.columns(3)
        m1.metric(
            "attention |a| / |x|",
            f"{anatomy.attn_update[layer].mean():.2f}",
            help="Mean over tokens of |a| / |x|: how far attention moves the stream.",
        )
        m2.metric(
            "MLP |m| / |x + a|",
            f"{anatomy.mlp_update[layer].mean():.2f}",
            help="Mean over tokens of |m| / |x + a|.",
        )
        m3.metric(
            "rebuilt vs model",
            f"{anatomy.rebuild_error[layer]:.1e}",
            help="Largest difference between x + a + MLP(norm2(x + a)), computed here "
            "from the captured parts, and the model's own next hidden state.",
        )
        draw_chart(cb.stage_chart(cb.stage_frame(anatomy, layer)))
    st.dataframe(cb.stage_stats_frame(anatomy, layer), hide_index=True, width="stretch")
    st.subheader("Update sizes through the whole stack")
    draw_chart(cb.update_chart(cb.update_frame(anatomy), layer))
    st.caption(
        "Median over the prompt's tokens. Small ratios mean a block nudges the stream "
        "rather than rewriting it: that is what lets dozens of blocks be stacked. The "
        "dashed line is the block shown above."
    )


one_block()

st.subheader("Parameters per sub-module")
draw_chart(cb.params_chart(params_df))
st.dataframe(params_df, hide_index=True, width="stretch")
share = 100 * totals.per_block * totals.n_blocks / totals.total
head = "tied to the token embeddings (0 extra)" if totals.tied else f"{totals.lm_head:,}"
st.markdown(
    f"One block: **{totals.per_block:,}** parameters; × {totals.n_blocks} blocks = "
    f"{totals.per_block * totals.n_blocks:,} ({share:.0f} % of the model). Embeddings "
    f"{totals.embeddings:,}, final norm {totals.final_norm:,}, lm_head {head}. "
    f"Total **{totals.total:,}**, counted on the loaded model."
)
show_code(block_anatomy, rebuild_block, capture_outputs, model_parameters)

check_yourself()
