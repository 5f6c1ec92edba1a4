"""14 The Pre-training Loop: a small LM trained live (batches, loss, update), and parallel training's costs."""

from __future__ import annotations

import math

import streamlit as st

from components import pretraining_loop as cp
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.jobs import run_job
from components.questions import check_yourself
from core import pretraining_loop as pt

page_frame()
with intro():
    st.markdown(
        "Pre-training is one loop: cut random windows of text into a **batch**, run the model "
        "forward to predict every next token, measure the **loss** (mean surprisal in nats), "
        "backpropagate, clip the gradient, and let AdamW **update** every weight. Here a tiny GPT "
        "(minGPT's decoder) learns Python's documentation from scratch; 10 % of the text is held "
        "out as **validation** data it never trains on. The learning rate warms up linearly, then "
        "follows a cosine down to a tenth of its peak."
    )
with st.expander("Go deeper: why the first loss is ln(vocabulary)"):
    st.markdown(
        "The output layer starts at zero, so every logit is 0 and softmax gives each of the V "
        "tokens probability 1/V. The surprisal of whatever comes next is then −ln(1/V) = ln V, "
        "for every token: the starting loss is exactly ln V. A loss well above ln V at step 0 "
        "means a broken initialisation; a loss below it means the model learned something."
    )

kind, steps, batch, context, clip, lr, warmup = cp.settings_panel()
corpus = cp.corpus_for(kind)
cfg = pt.TrainConfig(
    batch_size=batch,
    context=context,
    lr=lr,
    warmup=warmup,
    steps=steps,
    grad_clip=clip,
    eval_every=max(5, steps // 10),
    sample_every=max(10, steps // 5),
)
n_params = cp.cached_param_count(corpus.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model, context)
m1, m2, m3, m4 = st.columns(4)
m1.metric(
    "vocabulary V",
    f"{corpus.vocab_size:,}",
    help=f"of the tokenizer's {corpus.full_vocab:,}" if kind == "bpe" else None,
)
m2.metric("ln V (expected first loss)", f"{math.log(corpus.vocab_size):.3f}")
m3.metric("parameters", f"{n_params:,}", help="2 layers, d = 128, 4 heads")
m4.metric("training tokens", f"{len(corpus.train):,}", help=f"+ {len(corpus.val):,} held out")
if kind == "bpe":
    n_full = cp.cached_param_count(corpus.full_vocab, cfg.n_layer, cfg.n_head, cfg.d_model, context)
    st.caption(
        f"The LM's BPE cuts the corpus into {corpus.vocab_size:,} distinct tokens of its "
        f"{corpus.full_vocab:,}. Renumbering just those shrinks the embedding and output "
        f"tables: {n_params:,} parameters instead of {n_full:,}, and the 6N FLOPs per "
        "trained token shrink with them."
    )

log = run_job(
    ("pretraining_loop", kind, cp.get_lm().model_id if kind == "bpe" else "", cfg),
    cp.train_work(corpus, cfg),
    start_label="Train the tiny GPT",
    estimate_s=pt.training_estimate_s(n_params, cfg),
    caps=f"At most {pt.STEP_CAP} steps; one CPU thread.",
    on_partial=cp.live_view,
)
if log is not None:
    cp.show_run(log)
    first, last = log.evals[0], log.evals[-1]
    st.markdown(
        f"At step 0 the validation loss was **{first.val:.3f}** against ln V = "
        f"{log.ln_vocab:.3f} ({cp.gap_text(first.val, log.ln_vocab)}); after "
        f"{last.step} steps it is **{last.val:.3f}** (training batches {last.train:.3f}), a "
        f"perplexity of {math.exp(last.val):,.0f} instead of {corpus.vocab_size:,}. "
        f"{log.tokens:,} tokens in {log.seconds:.1f} s: {log.tokens_per_s:,.0f} tokens/s."
    )
    with st.expander("Samples as it learned, and the gradient norm"):
        for step, text in log.samples:
            st.caption(f"step {step}")
            st.text(text)
        draw_chart(cp.grad_norm_chart(cp.grad_norm_frame(log), clip))
        st.caption("Each step's gradient norm before clipping; the red line is the clip level.")

st.subheader("Data parallel: one step on several workers")
cp.data_parallel_demo(kind)

st.subheader("Memory and communication of parallel training")
cp.memory_calculator("pretraining_loop", n_params)
show_code(pt.train, pt.lr_factor, pt.data_parallel_check, pt.memory_plan)

check_yourself()
