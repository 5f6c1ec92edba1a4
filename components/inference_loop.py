"""The inference loop (concept 18): step-by-step generation state, per-token timings and the
KV cache growing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import draw_chart
from components.jobs import run_job
from components.models import load_int8, load_model
from components.tokens import token_strip, visible
from core import inference_loop as inf
from core.inspect.anatomy import geometry
from core.inspect.trace import token_strings
from core.runtime.generation import GENERATION_CAP, DecodingSettings, Step, generate_stream
from core.runtime.quantize import int8_available

IDS, STEPS, STREAM, FOR = (
    "inference_loop.ids",
    "inference_loop.steps",
    "inference_loop.stream",
    "inference_loop.for",
)


def reset_steps(key: tuple, prompt_ids: Sequence[int], force: bool = False) -> None:
    """Start over when the model, prompt or settings change (or on request)."""
    ss = st.session_state
    if force or ss.get(FOR) != key or IDS not in ss:
        ss[FOR] = key
        ss[IDS] = list(prompt_ids)
        ss[STEPS] = []
        ss.pop(STREAM, None)


def generation_model(model_id: str, fast: bool = False):
    """The model Step and Run generate with: the shared float32 one, or its int8 copy."""
    return load_int8(model_id) if fast else load_model(model_id)


def _stream(model_id: str, settings: DecodingSettings, fast: bool = False) -> Iterator[Step]:
    """The live generator lives in this session's state, so its KV cache survives between
    Step clicks; if it is gone, a new one starts from the ids so far (a fresh prefill)."""
    ss = st.session_state
    if STREAM not in ss:
        left = settings.max_new_tokens - len(ss[STEPS])
        s = DecodingSettings(
            **{
                **asdict(settings),
                "max_new_tokens": max(0, left),
                "seed": settings.seed + len(ss[STEPS]),
            }
        )
        ss[STREAM] = generate_stream(generation_model(model_id, fast), list(ss[IDS]), s)
    return ss[STREAM]


def take_steps(
    model_id: str, settings: DecodingSettings, limit: int, fast: bool = False
) -> Iterator[Step]:
    """Advance up to `limit` steps, recording each in session state as it arrives."""
    ss = st.session_state
    stream = _stream(model_id, settings, fast)
    for _ in range(limit):
        step = next(stream, None)
        if step is None:
            ss[FOR + ".done"] = ss[FOR]
            return
        ss[IDS].append(step.token_id)
        ss[STEPS].append(step)
        yield step


def step_once(model_id: str, settings: DecodingSettings, fast: bool = False) -> None:
    """The Step button's callback: runs before the page redraws, so it shows the new state."""
    for _ in take_steps(model_id, settings, 1, fast):
        pass


def finished(settings: DecodingSettings, eos: set[int]) -> bool:
    ss = st.session_state
    steps = ss.get(STEPS, [])
    return (
        len(steps) >= settings.max_new_tokens
        or bool(steps and steps[-1].token_id in eos and settings.stop_at_eos)
        or ss.get(FOR + ".done") == ss.get(FOR)
    )


def steps_frame(steps: Sequence[Step], config, dtype_bytes: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "step": i + 1,
                "position": s.position,
                "token": visible(s.text),
                "probability": s.prob,
                "phase": "prefill" if s.prefill else "decode",
                "tokens in cache": s.cached_tokens,
                "KV cache bytes": inf.kv_cache_bytes(config, s.cached_tokens, dtype_bytes),
                "ms": s.seconds * 1000,
            }
            for i, s in enumerate(steps)
        ]
    )


def timing_estimate_s(prompt_tokens: int, new_tokens: int) -> float:
    """Idle-machine seconds for both runs of `token_timings_job` on a ~135M model on 2 cores
    (a cached step ~50 ms; an uncached one re-reads the sequence, ~300 tokens a second),
    before `run_job` scales it by the server's load."""
    steps = new_tokens + 1
    uncached = sum(0.05 + (prompt_tokens + k) / 300 for k in range(steps))
    return 0.05 * steps + uncached


def token_timings_job(
    model_id: str, ids: tuple[int, ...], new_tokens: int
) -> inf.CacheComparison | None:
    """Greedy tokens timed with and without the KV cache, behind a button with progress and
    Stop (`components.jobs.run_job`); shared by everyone with the same prompt and count."""
    return run_job(
        ("inference_loop", "timings", model_id, ids, new_tokens),
        lambda report: inf.compare_cache(load_model(model_id), ids, new_tokens, report),
        start_label=f"Time {new_tokens} tokens with and without the cache",
        estimate_s=timing_estimate_s(len(ids), new_tokens),
        caps=f"Greedy, at most {inf.TIMING_CAP // 2} tokens; measured live on this machine, "
        "which other learners share: the estimate is scaled by its current load.",
        rerun_label="Measure again",
    )


def timings_frame(runs: dict[str, Sequence[inf.TokenTiming]]) -> pd.DataFrame:
    """One row per timed token of each named run (the chart's "mode")."""
    return pd.DataFrame(
        [
            {
                "position": t.position,
                "ms": t.ms,
                "token_id": t.token_id,
                "phase": "prefill" if t.prefill else "decode",
                "mode": mode,
            }
            for mode, timings in runs.items()
            for t in timings
        ]
    )


def token_timings_frame(c: inf.CacheComparison) -> pd.DataFrame:
    return timings_frame({"with KV cache": c.with_cache, "without cache": c.without_cache})


def ms_per_token_chart(
    df: pd.DataFrame, modes: tuple[str, str] = ("with KV cache", "without cache")
) -> alt.Chart:
    """Measured milliseconds per generated token against its position, both modes."""
    decode = df[df["phase"] == "decode"]
    return (
        alt.Chart(decode)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "position:Q",
                title="position of the new token",
                scale=alt.Scale(zero=False),
                axis=alt.Axis(format="d", tickMinStep=1),
            ),  # positions are whole numbers
            y=alt.Y("ms:Q", title="ms for this token"),
            color=alt.Color(
                "mode:N",
                title=None,
                legend=alt.Legend(orient="top", labelLimit=300),
                scale=alt.Scale(domain=list(modes), range=["#4C6EF5", "#e8590c"]),
            ),
            tooltip=["mode", "position", alt.Tooltip("ms:Q", format=".1f")],
        )
        .properties(height=280)
    )


def kv_growth_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar(color="#4C6EF5")
        .encode(
            x=alt.X("position:O", title="position of the new token"),
            y=alt.Y("KV cache bytes:Q", title="KV cache (bytes)"),
            tooltip=[
                "step",
                "position",
                "token",
                "tokens in cache",
                alt.Tooltip("KV cache bytes:Q", format=","),
            ],
        )
        .properties(height=220)
    )


def int8_estimate_s(prompt_tokens: int, new_tokens: int) -> float:
    """Idle-machine seconds for `int8_job`: quantising (~2 s, once), a prefill each, and
    decode steps of ~45 ms (float32) and ~25 ms (int8); `run_job` scales it by the load."""
    prefill = 2 * (0.05 + prompt_tokens / 400)
    return 2.0 + prefill + new_tokens * (0.045 + 0.025)


def int8_job(model_id: str, ids: tuple[int, ...], new_tokens: int):
    """Greedy tokens from the float32 model and its int8 copy, timed, behind a button."""
    from core.inference_loop import compare_int8

    return run_job(
        ("inference_loop", "int8", model_id, ids, new_tokens),
        lambda report: compare_int8(
            load_model(model_id), load_int8(model_id), ids, new_tokens, report
        ),
        start_label=f"Generate {new_tokens} tokens with float32 and with int8 weights",
        estimate_s=int8_estimate_s(len(ids), new_tokens),
        caps=f"Greedy, at most {inf.TIMING_CAP // 2} tokens; measured live on this machine, which "
        "other learners share: the estimate is scaled by its current load.",
        rerun_label="Measure again",
    )


def int8_frame(c) -> pd.DataFrame:
    return timings_frame({"float32 weights": c.fp32, "int8 weights": c.int8})


def fast_mode_section(lm, prompt_ids: tuple[int, ...], fast_ok: bool) -> None:
    """Page 18's last section: int8 weights against float32, measured on the prompt."""
    st.subheader("Fast mode: 8-bit weights, measured")
    st.markdown(
        "A decode step on a CPU mostly waits for the weights to arrive from memory. Storing "
        "the linear layers' weights as **int8** (one scale per matrix) instead of float32 "
        "reads a quarter of the bytes; activations are rounded to int8 on the fly. The price "
        "is rounding: the logits move, and where two tokens were nearly tied, greedy decoding "
        "picks the other one and from there the two texts part ways (the measurement below "
        "says after how many tokens). The MLP's output projections, whose inputs carry the "
        "largest outliers, stay float32, as do embeddings, norms and the KV cache."
    )
    if not fast_ok:
        st.info(
            "Fast mode is off here: "
            + (
                f"most of {lm.model_id}'s weights are not in linear layers (GPT-2 style models "
                "use Conv1D), so int8 linear layers would change little."
                if int8_available()
                else "this torch build has no int8 dynamic quantisation."
            )
        )
        return
    _fast_mode_measure(lm, prompt_ids)


def _fast_mode_measure(lm, prompt_ids: tuple[int, ...]) -> None:
    n = st.slider(
        "Tokens to compare", 8, inf.TIMING_CAP // 2, 24, 8, key="inference_loop.int8_tokens"
    )
    c = int8_job(lm.model_id, prompt_ids, n)
    if c is None:
        return
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("float32", f"{c.fp32_ms:.0f} ms/token")
    k2.metric("int8", f"{c.int8_ms:.0f} ms/token")
    k3.metric("Speed-up", f"{c.speedup:.2f}×")
    k4.metric("Same tokens before they differ", f"{c.same_prefix} of {c.tokens}")
    draw_chart(ms_per_token_chart(int8_frame(c), ("float32 weights", "int8 weights")))
    t1, t2 = st.columns(2)
    for col, name, run in ((t1, "float32", c.fp32), (t2, "int8", c.int8)):
        col.markdown(f"**{name}**")
        col.text(lm.tokenizer.decode([t.token_id for t in run]))
    st.caption(
        "Decode steps only. Both runs are greedy from the same prompt; "
        + (
            "they chose the same tokens throughout."
            if c.same_prefix == c.tokens
            else "they differ from the first token on: rounding tipped a near tie."
            if c.same_prefix == 0
            else f"they agree for {c.same_prefix} token(s), then rounding tips a near tie."
        )
        + " Only Step and Run above use fast mode, when it is on; every other page keeps "
        "float32, because they show the model's internals. int8 rounds each input with one "
        "scale for the whole batch, so fast-mode answers are computed one learner at a time "
        "(in a batch, one learner's text would change another's): with a whole class "
        "generating at once, the batched float32 engine can serve you faster."
    )


def timing_section(model_id: str, prompt_ids: tuple[int, ...]) -> None:
    """Milliseconds per token with and without the cache, measured behind a button."""
    n = st.slider(
        "Tokens to time",
        8,
        inf.TIMING_CAP // 2,
        16,
        8,
        key="inference_loop.timing_tokens",
        help=f"Greedy, with and without the cache; capped at {inf.TIMING_CAP // 2}.",
    )
    c = token_timings_job(model_id, prompt_ids, n)
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
    draw_chart(ms_per_token_chart(token_timings_frame(c)))
    st.caption(timing_caption(c))


def timing_caption(c: inf.CacheComparison) -> str:
    """The sentence under the timing chart; when this measurement came out with the cache
    slower (steps stalled by other work on shared cores) it says so rather than leave "0.41×"
    next to a claim that the cache saves time."""
    slower = (
        f" This time the cached run was the slower one ({c.cached_ms:.0f} against "
        f"{c.uncached_ms:.0f} ms per token, slowest step {slowest_ms(c.with_cache):.0f} ms): "
        "timings on cores other learners share are noisy. Press Measure again."
        if c.speedup < 1
        else ""
    )
    return (
        "Decode steps only (the prefill is the same for both). Without the cache every step "
        "re-reads the whole sequence, so its cost climbs with the position; with it, each step "
        "reads one token."
        + slower
        + " Both runs chose "
        + ("the same tokens." if c.same_tokens else "different tokens (numerical noise).")
        + f" Measured live on this machine, shared with other users; generation is capped at "
        f"{GENERATION_CAP} tokens everywhere."
    )


def slowest_ms(timings) -> float:
    return max((t.ms for t in timings if not t.prefill), default=float("nan"))


def steps_section(lm, steps: list, n_prompt: int, width: int, fast: bool) -> None:
    """The steps taken so far: timings, KV cache, the new tokens by probability, the table."""
    geo = geometry(lm.config)
    if steps:
        df = steps_frame(steps, lm.config, width)
        prefill = steps[0]
        decode = df[df["phase"] == "decode"]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric(
            "Prefill",
            f"{prefill.seconds * 1000:.0f} ms",
            help=f"Read all {n_prompt} prompt tokens in one pass.",
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
        ids = st.session_state[IDS]
        token_strip(
            list(token_strings(lm.tokenizer, ids[n_prompt:])),
            values=[min(1.0, s.prob) for s in steps],
            titles=[f"p = {s.prob:.3f}" for s in steps],
        )
        st.caption("New tokens, coloured by the probability the model gave them (hover for it).")
        draw_chart(kv_growth_chart(df))
        st.dataframe(
            df,
            hide_index=True,
            width="stretch",
            column_config={
                "probability": st.column_config.NumberColumn(format="%.3f"),
                "ms": st.column_config.NumberColumn(format="%.1f"),
            },
        )
