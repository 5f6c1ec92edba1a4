"""Charts, cached wrappers and the memory calculator for the pre-training loop (page 14);
page 15 reuses the memory calculator."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st
import torch

from components.charts import draw_chart, fitting_columns
from components.models import get_lm
from core import pretraining_loop as pt
from core.inspect.anatomy import geometry
from core.layers import toy_threads
from core.shared.published import PUBLISHED_CONFIGS, count_parameters, parameter_count

TOKENIZATIONS = {"bpe": "BPE: the LM's tokens that occur in the corpus", "char": "Characters"}
# The page opens on characters: in the default 200 steps the validation loss falls from
# ln 103 = 4.63 to about 2.6 and the samples go from symbol soup to word-shaped text, while
# the BPE model (thousands of tokens) ends near 6.2 with gibberish (measured on this corpus).
DEFAULT_KIND = "char"
LOSS_COLORS = alt.Scale(
    domain=["train (each step)", "train (fixed batches)", "validation"],
    range=["#9ecae9", "#1f77b4", "#ff7f0e"],
)


# ---- cached work ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Tokenizing the corpus…", max_entries=4)
def cached_corpus(kind: str, model_id: str) -> pt.TokenizedCorpus:
    if kind == "char":
        return pt.char_corpus()
    return pt.bpe_corpus(get_lm().tokenizer)


def corpus_for(kind: str) -> pt.TokenizedCorpus:
    lm_id = get_lm().model_id if kind == "bpe" else ""
    return cached_corpus(kind, lm_id)


JUST_TRAINED = "pretraining_loop.just_trained"


def train_work(corpus: pt.TokenizedCorpus, cfg: pt.TrainConfig):
    def work(report):
        with toy_threads():
            log = pt.train(corpus, cfg, report)
        st.session_state[JUST_TRAINED] = True  # the live view already shows the final state
        return log

    return work


def show_run(log: pt.TrainLog) -> None:
    """The finished run: drawn again on later reruns, not right under its own live view."""
    if not st.session_state.pop(JUST_TRAINED, False):
        live_view(log)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_param_count(vocab: int, n_layer: int, n_head: int, d_model: int, context: int) -> int:
    return pt.config_parameter_count(pt.GPTConfig(vocab, context, n_layer, n_head, d_model))


@st.cache_resource(show_spinner="Computing each worker's gradient…", max_entries=8)
def cached_dp_check(
    kind: str, model_id: str, workers: int, batch: int, context: int
) -> pt.DataParallelCheck:
    corpus = cached_corpus(kind, model_id)
    cfg = pt.TrainConfig(context=context)
    model = pt.make_model(corpus, cfg)
    x, y = pt.get_batch(corpus.train, batch, context, torch.Generator().manual_seed(0))
    with toy_threads():
        return pt.data_parallel_check(model, x, y, workers)


# ---- frames and charts -----------------------------------------------------------------------------


def schedule_frame(lr: float, warmup: int, steps: int, min_ratio: float) -> pd.DataFrame:
    sched = pt.lr_schedule(lr, warmup, steps, min_ratio)
    return pd.DataFrame({"step": range(len(sched)), "learning rate": sched})


def schedule_caption(lr: float, warmup: int, steps: int, min_ratio: float = 0.1) -> str:
    """The schedule `core.pretraining_loop.lr_factor` follows, as a formula for these settings
    (with no warmup there is no warmup phase to divide by)."""
    floor = f"{min_ratio:g} + {1 - min_ratio:g}"
    if warmup <= 0:
        return (
            f"No warmup: lr(t) = {lr:g} · ({floor} · ½(1 + cos(π · t / {steps}))) from the "
            "first step."
        )
    return (
        f"lr(t) = {lr:g} · t / {warmup} during warmup, then {lr:g} · ({floor} · "
        f"½(1 + cos(π · (t − {warmup}) / {max(1, steps - warmup)}))."
    )


def schedule_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("learning rate:Q", title="learning rate", axis=alt.Axis(format=".1e")),
            tooltip=["step", alt.Tooltip("learning rate:Q", format=".2e")],
        )
        .properties(height=200)
    )


def loss_frame(log: pt.TrainLog) -> pd.DataFrame:
    rows = [{"step": i, "loss": x, "curve": "train (each step)"} for i, x in enumerate(log.losses)]
    for e in log.evals:
        rows.append({"step": e.step, "loss": e.train, "curve": "train (fixed batches)"})
        rows.append({"step": e.step, "loss": e.val, "curve": "validation"})
    return pd.DataFrame(rows, columns=["step", "loss", "curve"])


def loss_chart(df: pd.DataFrame, ln_vocab: float, steps: int) -> alt.Chart:
    lines = (
        alt.Chart(df)
        .mark_line(point=alt.OverlayMarkDef(size=20))
        .encode(
            x=alt.X("step:Q", title="step", scale=alt.Scale(domain=[0, steps])),
            y=alt.Y(
                "loss:Q", title="cross-entropy loss (nats per token)", scale=alt.Scale(zero=False)
            ),
            color=alt.Color(
                "curve:N",
                scale=LOSS_COLORS,
                title=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(df["curve"].unique())),
            ),
            tooltip=["curve", "step", alt.Tooltip("loss:Q", format=".3f")],
        )
    )
    rule_df = pd.DataFrame({"y": [ln_vocab], "label": [f"ln V = {ln_vocab:.2f}"]})
    rule = alt.Chart(rule_df).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    text = (
        alt.Chart(rule_df)
        .mark_text(align="left", dx=4, dy=-6, color="gray")
        .encode(y="y:Q", x=alt.value(0), text="label:N")
    )
    return (lines + rule + text).properties(height=280)


def grad_norm_frame(log: pt.TrainLog) -> pd.DataFrame:
    return pd.DataFrame({"step": range(len(log.grad_norms)), "gradient norm": log.grad_norms})


def grad_norm_chart(df: pd.DataFrame, clip: float) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y(
                "gradient norm:Q",
                title="gradient norm before clipping",
                scale=alt.Scale(type="log"),
            ),
        )
    )
    if clip <= 0:
        return line.properties(height=200)
    rule = (
        alt.Chart(pd.DataFrame({"clip": [clip]}))
        .mark_rule(strokeDash=[4, 4], color="#d62728")
        .encode(y="clip:Q")
    )
    return (line + rule).properties(height=200)


def live_view(log: pt.TrainLog) -> None:
    """Drawn a few times a second while training (run_job's on_partial)."""
    c1, c2, c3 = st.columns(3)
    c1.metric("step", f"{len(log.losses)} / {log.steps_planned}")
    c2.metric("tokens per second", f"{log.tokens_per_s:,.0f}")
    last = log.evals[-1] if log.evals else None
    c3.metric(
        "validation loss",
        f"{last.val:.3f}" if last else "–",
        help=f"at step {last.step}" if last else None,
    )
    draw_chart(loss_chart(loss_frame(log), log.ln_vocab, log.steps_planned))
    if log.samples:
        step, text = log.samples[-1]
        st.caption(
            f"Sample at step {step}: {pt.SAMPLE_TOKENS} tokens after "
            f"{pt.SAMPLE_PROMPT!r}, temperature 0.8"
        )
        st.text(text)


def dp_frame(check: pt.DataParallelCheck) -> pd.DataFrame:
    rows = [
        {"gradient": f"worker {i + 1}", "norm": n, "kind": "one worker's shard"}
        for i, n in enumerate(check.worker_grad_norms)
    ]
    rows.append(
        {
            "gradient": "average of workers",
            "norm": check.averaged_grad_norm,
            "kind": "all-reduce average",
        }
    )
    rows.append({"gradient": "full batch", "norm": check.full_grad_norm, "kind": "full batch"})
    return pd.DataFrame(rows)


def dp_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("gradient:N", sort=None, title=None),
            x=alt.X("norm:Q", title="gradient norm (all parameters)"),
            color=alt.Color(
                "kind:N",
                title=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(df["kind"].unique())),
            ),
            tooltip=["gradient", alt.Tooltip("norm:Q", format=".6f")],
        )
        .properties(height=alt.Step(22))
    )


# ---- the memory and communication calculator (pages 14 and 15) -------------------------------


def model_presets(tiny_params: int | None = None) -> dict[str, tuple[int, int, int]]:
    """Name -> (parameters, layers, d_model): the loaded LM, published configs, the tiny GPT."""
    out: dict[str, tuple[int, int, int]] = {}
    if tiny_params:
        out["This page's tiny GPT"] = (tiny_params, 2, 128)
    lm = get_lm()
    cfg = lm.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 1)
    width = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 1)
    out[f"{lm.model_id} (loaded)"] = (
        count_parameters(lm.model),
        int(layers),
        int(width),
    )
    for c in PUBLISHED_CONFIGS:
        if c["name"] in ("Llama-2 7B", "Llama-2 70B", "GPT-3 175B"):
            s = geometry(c)
            out[c["name"]] = (parameter_count(s).total, s.n_layers, s.d_model)
    return out


def _size(x: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if x >= scale:
            return f"{x / scale:,.1f} {unit}"
    return f"{x:,.0f} B"


def memory_frame(plan: pt.MemoryPlan) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "where": "one GPU",
            "part": ["weights", "gradients", "optimizer (Adam m, v)"],
            "GB": [plan.weights / 1e9, plan.grads / 1e9, plan.optimizer / 1e9],
        }
    )


def memory_chart(df: pd.DataFrame, gpu_gb: float) -> alt.Chart:
    bar = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("GB:Q", stack="zero", title="GB per GPU (model states); red: GPU memory"),
            y=alt.Y("where:N", title=None),
            color=alt.Color(
                "part:N",
                title=None,
                sort=None,
                legend=alt.Legend(orient="bottom", columns=fitting_columns(df["part"].unique())),
            ),
            order=alt.Order("order:Q"),
            tooltip=["part", alt.Tooltip("GB:Q", format=",.3f")],
        )
        .transform_calculate(
            order="indexof(['weights', 'gradients', 'optimizer (Adam m, v)'], datum.part)"
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"GB": [gpu_gb]}))
        .mark_rule(color="#d62728", strokeDash=[4, 4], size=2)
        .encode(x="GB:Q")
    )
    return (bar + rule).properties(height=90)


def memory_calculator(prefix: str, tiny_params: int | None = None) -> None:
    """Controls and results for data/tensor/pipeline parallel training with ZeRO."""
    presets = model_presets(tiny_params)
    names = list(presets)
    c1, c2, c3 = st.columns(3)
    loaded = next(i for i, n in enumerate(names) if n.endswith("(loaded)"))
    name = c1.selectbox("Model", names, index=loaded, key=f"{prefix}.mem_model")
    precision = c2.selectbox(
        "Precision",
        list(pt.BYTES_PER_PARAM),
        key=f"{prefix}.mem_prec",
        help="fp32: weights 4 + grads 4 + Adam m, v 8 = 16 bytes per "
        "parameter. Mixed bf16: 2 + 2 + fp32 master, m, v 12 = 16.",
    )
    gpu_gb = c3.number_input("GPU memory (GB)", 8, 192, 80, step=8, key=f"{prefix}.mem_gpu")
    d1, d2, d3, d4 = st.columns(4)
    dp = d1.select_slider("Data parallel", [1, 2, 4, 8, 16, 32, 64], 8, key=f"{prefix}.mem_dp")
    tp = d2.select_slider("Tensor parallel", [1, 2, 4, 8], 1, key=f"{prefix}.mem_tp")
    pp = d3.select_slider("Pipeline stages", [1, 2, 4, 8, 16], 1, key=f"{prefix}.mem_pp")
    zero = d4.select_slider(
        "ZeRO stage",
        [0, 1, 2, 3],
        0,
        key=f"{prefix}.mem_zero",
        help="Shards over the data-parallel GPUs: 1 the optimizer state, "
        "2 also the gradients, 3 also the weights.",
    )
    params, layers, width = presets[name]
    plan = pt.ParallelPlan(
        params, layers, width, dp=dp, tp=tp, pp=pp, zero=zero, precision=precision
    )
    mem = pt.memory_plan(plan)
    per_param = sum(pt.BYTES_PER_PARAM[precision])
    draw_chart(memory_chart(memory_frame(mem), gpu_gb))
    fits = "fits" if mem.total <= gpu_gb * 1e9 else "does **not** fit"
    st.markdown(
        f"**{name}**: {params:,} parameters × {per_param} bytes = {_size(params * per_param)} of "
        f"model states in all; on each of {plan.gpus} GPUs **{_size(mem.total)}**, which {fits} "
        f"in {gpu_gb} GB (red line) before activations, which grow with batch × context."
    )
    st.caption(traffic_text(plan, mem))


def traffic_text(plan: pt.ParallelPlan, mem: pt.MemoryPlan) -> str:
    """What each GPU sends per step; a parallelism switched off (size 1) sends nothing and
    says so instead of "0 B (tensor parallel, 4 all-reduces per layer)"."""
    zero3 = ", ×1.5 for ZeRO-3" if plan.zero == 3 else ""
    sent = [
        f"gradients {_size(mem.dp_bytes)} (data parallel{zero3})"
        if plan.dp > 1
        else "no gradients (one data-parallel copy)",
        f"activations {_size(mem.tp_bytes)} (tensor parallel, 4 all-reduces per layer)"
        if plan.tp > 1
        else "no activations between GPUs of a layer (no tensor parallel)",
        f"{_size(mem.pp_bytes)} between pipeline stages, pipeline bubble {mem.bubble:.0%} of "
        "each step idle"
        if plan.pp > 1
        else "nothing between pipeline stages (one stage, no bubble)",
    ]
    return (
        f"Sent per GPU per step (ring all-reduce, {plan.micro_batches} micro-batches of "
        f"{plan.micro_batch} × {plan.seq_len} tokens, {plan.precision} activations): "
        + "; ".join(sent)
        + "."
    )


def gap_text(value: float, reference: float) -> str:
    """How far `value` is from `reference`, in words: "0.3% apart", or "less than 0.01% apart"
    where a percentage would print as "0.00%" (the first loss sits right on ln V)."""
    gap = abs(value / reference - 1)
    return "less than 0.01% apart" if gap < 5e-5 else f"{gap:.2%} apart"


def fmt_params(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:,.3g}{unit}"
    return f"{n:,.0f}"


def nats(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


DP_BATCH, DP_CONTEXT = 8, 32  # the demonstration's batch: small, so it costs a fraction of a second


@st.fragment
def data_parallel_demo(kind: str) -> None:
    """Split one batch over simulated workers; their averaged gradient is the full batch's."""
    workers = st.select_slider("Workers", [1, 2, 4, 8], 4, key="pretraining_loop.workers")
    lm_id = get_lm().model_id if kind == "bpe" else ""
    check = cached_dp_check(kind, lm_id, workers, DP_BATCH, DP_CONTEXT)
    st.markdown(
        f"Take a batch of {DP_BATCH} sequences of {DP_CONTEXT} tokens. Each of {workers} workers "
        f"holds a copy of the (freshly initialised) model and computes the gradient of its own "
        f"{check.shard_size} sequences; the all-reduce averages those gradients. Largest "
        f"difference between that average and the gradient of the whole batch on one machine, "
        f"over all {n_params_text(check)} numbers: **{check.max_abs_diff:.1e}** (float32 "
        "rounding), so every worker takes the same update one big machine would."
    )
    draw_chart(dp_chart(dp_frame(check)))
    st.caption(
        "Each worker's own gradient differs (it saw other text); their average matches "
        "the full batch's."
    )


def n_params_text(check: pt.DataParallelCheck) -> str:
    return f"{check.n_values:,}"


def settings_panel() -> tuple[str, int, int, int, float, float, int]:
    """The run's settings (vocabulary, steps, batch, context, clip, peak learning rate, warmup)
    beside the learning-rate schedule they give; returned in that order."""
    q = "query-params"  # main controls go into the URL: a shareable link
    left, right = st.columns([3, 2], gap="large")
    with left:
        c1, c2 = st.columns(2)
        kind = c1.radio(
            "Vocabulary",
            list(TOKENIZATIONS),
            index=list(TOKENIZATIONS).index(DEFAULT_KIND),
            format_func=TOKENIZATIONS.get,
            key="pretraining_loop.kind",
        )
        steps = c2.slider(
            "Steps",
            20,
            pt.STEP_CAP,
            200,
            10,
            key="pretraining_loop.steps",
            bind=q,
            help=f"Capped at {pt.STEP_CAP} steps.",
        )
        c1, c2, c3 = st.columns(3)
        batch = c1.select_slider(
            "Batch size", [4, 8, 16, 32, 64], 16, key="pretraining_loop.batch", bind=q
        )
        context = c2.select_slider(
            "Context length", [16, 32, 64, 128], 64, key="pretraining_loop.context", bind=q
        )
        clip = c3.select_slider(
            "Clip gradient norm at",
            [0.0, 0.25, 0.5, 1.0, 2.0, 5.0],
            1.0,
            format_func=lambda v: "off" if v == 0 else f"{v:g}",
            key="pretraining_loop.clip",
        )
        c1, c2 = st.columns(2)
        lr = c1.select_slider(
            "Peak learning rate",
            [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
            3e-3,
            format_func=lambda v: f"{v:g}",
            key="pretraining_loop.lr",
        )
        warmup = c2.slider("Warmup steps", 0, 100, 20, 5, key="pretraining_loop.warmup", bind=q)
    warmup = min(warmup, steps)
    with right:
        draw_chart(schedule_chart(schedule_frame(lr, warmup, steps, 0.1)))
        st.caption(schedule_caption(lr, warmup, steps))
    return kind, steps, batch, context, clip, lr, warmup
