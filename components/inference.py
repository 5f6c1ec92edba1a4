"""Charts, cached measurements and step-by-step state for pages 18 and 20."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from components.models import load_model
from components.tokens import visible
from core import inference as inf
from core.decoding import DecodingSettings, Step, generate_stream

# --- text -------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|$<>~=:])")


def escape_markdown(text: str) -> str:
    """Model or user text shown through markdown (st.write_stream) stays literal text:
    no LaTeX from `$`, no links, no HTML."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# --- step-by-step generation state (page 18) --------------------------------------------------

IDS, STEPS, STREAM, FOR = "inference.ids", "inference.steps", "inference.stream", "inference.for"


def reset_steps(key: tuple, prompt_ids: Sequence[int], force: bool = False) -> None:
    """Start over when the model, prompt or settings change (or on request)."""
    ss = st.session_state
    if force or ss.get(FOR) != key or IDS not in ss:
        ss[FOR] = key
        ss[IDS] = list(prompt_ids)
        ss[STEPS] = []
        ss.pop(STREAM, None)


def _stream(model_id: str, settings: DecodingSettings) -> Iterator[Step]:
    """The live generator lives in this session's state, so its KV cache survives between
    Step clicks; if it is gone, a new one starts from the ids so far (a fresh prefill)."""
    ss = st.session_state
    if STREAM not in ss:
        left = settings.max_new_tokens - len(ss[STEPS])
        s = DecodingSettings(**{**asdict(settings), "max_new_tokens": max(0, left),
                                "seed": settings.seed + len(ss[STEPS])})
        ss[STREAM] = generate_stream(load_model(model_id), list(ss[IDS]), s)
    return ss[STREAM]


def take_steps(model_id: str, settings: DecodingSettings, limit: int) -> Iterator[Step]:
    """Advance up to `limit` steps, recording each in session state as it arrives."""
    ss = st.session_state
    stream = _stream(model_id, settings)
    for _ in range(limit):
        step = next(stream, None)
        if step is None:
            ss[FOR + ".done"] = ss[FOR]
            return
        ss[IDS].append(step.token_id)
        ss[STEPS].append(step)
        yield step


def step_once(model_id: str, settings: DecodingSettings) -> None:
    """The Step button's callback: runs before the page redraws, so it shows the new state."""
    for _ in take_steps(model_id, settings, 1):
        pass


def eos_ids(lm) -> set[int]:
    """End-of-sequence ids from the generation config (an int or a list) and the tokenizer."""
    eos = lm.model.generation_config.eos_token_id
    ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
    return {int(i) for i in ids | {lm.tokenizer.eos_token_id} if i is not None}


def finished(settings: DecodingSettings, eos: set[int]) -> bool:
    ss = st.session_state
    steps = ss.get(STEPS, [])
    return (len(steps) >= settings.max_new_tokens
            or bool(steps and steps[-1].token_id in eos and settings.stop_at_eos)
            or ss.get(FOR + ".done") == ss.get(FOR))


def steps_frame(steps: Sequence[Step], config, dtype_bytes: int) -> pd.DataFrame:
    return pd.DataFrame([{
        "step": i + 1,
        "position": s.position,
        "token": visible(s.text),
        "probability": s.prob,
        "phase": "prefill" if s.prefill else "decode",
        "tokens in cache": s.cached_tokens,
        "KV cache bytes": inf.kv_cache_bytes(config, s.cached_tokens, dtype_bytes),
        "ms": s.seconds * 1000,
    } for i, s in enumerate(steps)])


# --- cached measurements ----------------------------------------------------------------------


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Timing each token with and without "
               "the KV cache…")
def token_timings(model_id: str, ids: tuple[int, ...], new_tokens: int, run: int) -> pd.DataFrame:
    """`run` only distinguishes a fresh measurement from the cached one."""
    lm = load_model(model_id)
    rows = []
    for use_cache in (True, False):
        for t in inf.time_per_token(lm, ids, new_tokens, use_cache):
            rows.append({"position": t.position, "ms": t.ms, "token_id": t.token_id,
                         "phase": "prefill" if t.prefill else "decode",
                         "mode": "with KV cache" if use_cache else "without cache"})
    return pd.DataFrame(rows)


@st.cache_data(max_entries=8, ttl=3600, show_spinner="Running the model at several lengths…")
def forward_costs(model_id: str, longest: int, run: int) -> pd.DataFrame:
    lm = load_model(model_id)
    lengths = inf.sweep_lengths(inf.cache_geometry(lm.config).context_length, longest)
    ids = inf.filler_ids(lm.tokenizer, max(lengths))
    inf.forward_cost(lm, ids[:16])  # warm-up: the first call pays one-off allocation costs
    return pd.DataFrame([asdict(inf.forward_cost(lm, ids[:n])) for n in lengths])


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def token_count(model_id: str, text: str) -> tuple[int, ...]:
    lm = load_model(model_id)
    return tuple(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()


# --- charts -----------------------------------------------------------------------------------


def ms_per_token_chart(df: pd.DataFrame) -> alt.Chart:
    """Measured milliseconds per generated token against its position, both modes."""
    decode = df[df["phase"] == "decode"]
    return (
        alt.Chart(decode).mark_line(point=True).encode(
            x=alt.X("position:Q", title="position of the new token", scale=alt.Scale(zero=False)),
            y=alt.Y("ms:Q", title="ms for this token"),
            color=alt.Color("mode:N", title=None,
                            legend=alt.Legend(orient="top", labelLimit=300),
                            scale=alt.Scale(domain=["with KV cache", "without cache"],
                                            range=["#4C6EF5", "#e8590c"])),
            tooltip=["mode", "position", alt.Tooltip("ms:Q", format=".1f")],
        ).properties(height=280)
    )


def kv_growth_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df).mark_bar(color="#4C6EF5").encode(
            x=alt.X("position:O", title="position of the new token"),
            y=alt.Y("KV cache bytes:Q", title="KV cache (bytes)"),
            tooltip=["step", "position", "token", "tokens in cache",
                     alt.Tooltip("KV cache bytes:Q", format=",")],
        ).properties(height=220)
    )


def forward_time_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Measured forward time beside n² and n curves scaled through the longest measurement."""
    last = df.iloc[-1]
    rows = []
    for _, r in df.iterrows():
        rows.append({"tokens": r.tokens, "ms": r.seconds * 1000, "series": "measured"})
        rows.append({"tokens": r.tokens, "series": "n² (through the last point)",
                     "ms": last.seconds * 1000 * (r.tokens / last.tokens) ** 2})
        rows.append({"tokens": r.tokens, "series": "n (through the last point)",
                     "ms": last.seconds * 1000 * (r.tokens / last.tokens)})
    data = pd.DataFrame(rows)
    color = alt.Color("series:N", title=None,
                      legend=alt.Legend(orient="top", labelLimit=300, columns=2),
                      scale=alt.Scale(domain=["measured", "n² (through the last point)",
                                              "n (through the last point)"],
                                      range=["#4C6EF5", "#e8590c", "#868e96"]))
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("ms:Q", title="forward pass (ms)"), color=color,
        tooltip=["series", "tokens", alt.Tooltip("ms:Q", format=".1f")],
    )
    measured = base.transform_filter(alt.datum.series == "measured").mark_line(point=True)
    curves = base.transform_filter(alt.datum.series != "measured").mark_line(strokeDash=[5, 4])
    return (curves + measured).properties(height=280)


def memory_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Bytes measured from the tensors (points) against their formulas (lines)."""
    rows = []
    for _, r in df.iterrows():
        for part, measured, formula in (("attention scores, one layer (n²)", r.scores_bytes,
                                         r.scores_formula),
                                        ("KV cache, all layers (n)", r.kv_bytes, r.kv_formula)):
            rows.append({"tokens": r.tokens, "part": part, "MB": measured / 1e6, "how": "measured"})
            rows.append({"tokens": r.tokens, "part": part, "MB": formula / 1e6, "how": "formula"})
    data = pd.DataFrame(rows)
    base = alt.Chart(data).encode(
        x=alt.X("tokens:Q", title="sequence length (tokens)"),
        y=alt.Y("MB:Q", title="memory (MB)"),
        color=alt.Color("part:N", title=None,
                        legend=alt.Legend(orient="top", labelLimit=300, columns=1)),
        tooltip=["part", "how", "tokens", alt.Tooltip("MB:Q", format=".3f")],
    )
    lines = base.transform_filter(alt.datum.how == "formula").mark_line()
    points = base.transform_filter(alt.datum.how == "measured").mark_point(size=70, filled=True)
    return (lines + points).properties(height=280)


def kv_models_chart(points: Sequence[inf.KvPoint]) -> alt.Chart:
    data = pd.DataFrame([{"model": p.model, "tokens": p.tokens, "GB": p.bytes / 1e9}
                         for p in points])
    return (
        alt.Chart(data).mark_line(point=True).encode(
            x=alt.X("tokens:Q", title="context length (tokens, log scale)",
                    scale=alt.Scale(type="log", base=2)),
            y=alt.Y("GB:Q", title="KV cache per sequence (GB, log scale)",
                    scale=alt.Scale(type="log")),
            color=alt.Color("model:N", title=None,
                            legend=alt.Legend(orient="right", labelLimit=300)),
            tooltip=["model", "tokens", alt.Tooltip("GB:Q", format=".4f")],
        ).properties(height=320)
    )


def budget_chart(prompt_tokens: int, context: int, budget: int) -> alt.LayerChart:
    data = pd.DataFrame([
        {"what": "model's context length", "tokens": context},
        {"what": "your prompt", "tokens": prompt_tokens},
        {"what": "truncation budget", "tokens": budget},
    ])
    bars = alt.Chart(data).mark_bar().encode(
        y=alt.Y("what:N", title=None, sort=None, axis=alt.Axis(labelLimit=250)),
        x=alt.X("tokens:Q", title="tokens"),
        color=alt.Color("what:N", legend=None,
                        scale=alt.Scale(range=["#adb5bd", "#4C6EF5", "#e8590c"])),
        tooltip=["what", alt.Tooltip("tokens:Q", format=",")],
    )
    text = bars.mark_text(align="left", dx=4).encode(text=alt.Text("tokens:Q", format=","))
    return (bars + text).properties(height=140)


def needle_chart(trials: Sequence[inf.NeedleTrial]) -> alt.LayerChart:
    """Recall by needle depth (x) and haystack length (y): found = filled cell."""
    data = pd.DataFrame([{"depth": f"{t.depth:.0%}", "d": t.depth, "length": t.length,
                          "tokens": t.tokens, "recall": 1.0 if t.found else 0.0,
                          "answer": visible(t.answer)[:40], "secret": t.secret,
                          "seconds": round(t.seconds, 1)} for t in trials])
    base = alt.Chart(data).encode(
        x=alt.X("depth:N", title="needle depth in the haystack",
                sort=alt.SortField("d")),
        y=alt.Y("length:O", title="haystack length (tokens)", sort="descending"),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color("recall:Q", title="recall", scale=alt.Scale(domain=[0, 1],
                        range=["#ffe3e3", "#2f9e44"])),
        tooltip=["length", "tokens", "depth", "secret", "answer", "seconds"],
    )
    labels = base.mark_text().encode(text=alt.Text("answer:N"))
    return (cells + labels).properties(height=60 + 45 * data["length"].nunique())
