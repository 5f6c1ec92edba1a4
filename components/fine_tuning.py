"""Fine-tuning & instruction tuning: the loss-mask strip, LoRA tables and charts, cached jobs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from components.charts import draw_chart
from components.jobs import after_stop, finished_result, run_job, shared_step
from components.models import load_model
from components.tokens import token_strip
from core import fine_tuning as ft

# Idle-machine seconds per training step of the default batch (4 short chats, ~58 tokens
# each): 2.4 CPU-s measured on one core; the job store corrects it from the runs it sees.
STEP_SECONDS = 3.0
OVERHEAD_S = 15.0  # the deep copy and 2 x 3 greedy answers of 24 tokens around the training
ANSWER_TOKENS_PER_S = 6.0  # greedy answers of the template comparison, idle machine
RUNNING = "fine_tuning.running"  # set in this session while its own fine-tune runs


@st.cache_resource(show_spinner=False)
def cached_data() -> ft.FineTuneData:
    return ft.load_data()


@st.cache_data(show_spinner=False, max_entries=64)
def cached_masked_chat(model_id: str, user: str, assistant: str) -> ft.MaskedChat:
    return ft.masked_chat(load_model(model_id).tokenizer, ft.conversation(user, assistant))


@st.cache_data(show_spinner=False, max_entries=8)
def cached_dataset_share(model_id: str) -> tuple[int, int]:
    """(counted tokens, all tokens) over the shipped training conversations."""
    chats = [cached_masked_chat(model_id, u, a) for u, a in cached_data().examples]
    return sum(c.counted for c in chats), sum(len(c.ids) for c in chats)


def before_answers(model_id: str, tokens: int, report: ft.Report) -> tuple[str, ...]:
    """The original model's held-out answers, the same for every LoRA setting: computed inside
    the first fine-tune that needs them (with its progress bar) and shared from the job store.
    Not an `st.cache_*` function: its replay would move a bar created outside it."""
    return shared_step(
        ("fine_tuning", "before", model_id, tokens),
        lambda: ft.held_out_answers(load_model(model_id), cached_data(), tokens, report),
    )


def mask_strip(model_id: str, chat: ft.MaskedChat) -> None:
    """Every token of the rendered conversation; orange ones are what the loss is computed on."""
    tok = load_model(model_id).tokenizer
    tokens = [tok.decode([i], clean_up_tokenization_spaces=False) for i in chat.ids]
    token_strip(
        tokens,
        values=[0.75 if m else 0.0 for m in chat.mask],
        titles=["counted by the loss" if m else "context: not a target" for m in chat.mask],
    )


def lora_frame(
    modules: tuple[ft.LinearModule, ...], targets: tuple[str, ...], rank: int, layers: int
) -> pd.DataFrame:
    rows = [
        {
            "module": m.name,
            "d_in": m.d_in,
            "d_out": m.d_out,
            "frozen weights per block": m.d_in * m.d_out,
            "LoRA parameters per block r(d_in+d_out)": rank * (m.d_in + m.d_out),
            f"x {layers} blocks": rank * (m.d_in + m.d_out) * layers,
        }
        for m in modules
        if m.name in targets
    ]
    return pd.DataFrame(rows)


def loss_chart(losses: tuple[float, ...]) -> alt.Chart:
    df = pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses})
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="training step", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("loss:Q", title="loss on assistant tokens (nats)", scale=alt.Scale(zero=True)),
            tooltip=["step", alt.Tooltip("loss:Q", format=".3f")],
        )
        .properties(height=260)
    )


def fine_tune_estimate_s(steps: int) -> float:
    return OVERHEAD_S + steps * STEP_SECONDS


def template_estimate_s() -> float:
    return 2 * ft.ANSWER_TOKENS / ANSWER_TOKENS_PER_S


def fine_tune_job(model_id: str, s: ft.LoraSettings) -> ft.FineTuneResult | None:
    """The LoRA fine-tune behind its button; result shared by every learner.

    The loss curve has one slot above the button: drawn live during the run, then final.
    """
    slot = st.empty()

    def draw(losses: tuple[float, ...]) -> None:
        draw_chart(loss_chart(losses), where=slot)

    def work(report: ft.Report) -> ft.FineTuneResult:
        mine = st.session_state[RUNNING] = object()
        try:
            return ft.fine_tune(
                load_model(model_id),
                cached_data(),
                s,
                report,
                lambda rep: before_answers(model_id, s.answer_tokens, rep),
            )
        finally:  # (after a Stop, only a helper thread may still touch session state)
            after_stop(lambda: _unmark(mine))

    busy_note(finished_result(_key(model_id, s)) is None)
    result = run_job(
        _key(model_id, s),
        work,
        start_label="Fine-tune a copy with LoRA",
        estimate_s=fine_tune_estimate_s(s.steps),
        caps=f"Caps: at most {ft.MAX_STEPS} steps and rank {ft.MAX_RANK}; batches of {s.batch} "
        f"chats; one fine-tune at a time in this app; answers are {ft.ANSWER_TOKENS} greedy "
        "tokens. The copy is freed afterwards: only the adapter weights are kept.",
        on_partial=draw,
    )
    if result is not None:
        draw(result.losses)
    return result


def _unmark(mine: object) -> None:
    if st.session_state.get(RUNNING) is mine:  # not a newer run's mark
        del st.session_state[RUNNING]


def busy_note(not_done: bool) -> None:
    """Say when a fine-tune holds the one-at-a-time lock: another learner's, or this learner's
    own stopped run still finishing its current step (it ends at its next progress report)."""
    if not (ft.FINE_TUNE_LOCK.locked() and not_done):
        return
    if st.session_state.get(RUNNING):
        st.info(
            "Your stopped fine-tune is finishing its current step; a new one starts as soon "
            "as it has."
        )
    else:
        st.info(
            "Another learner's fine-tune is running right now (one at a time, to keep memory "
            "in bounds). If you start yours, it waits for that one to finish first."
        )


def _key(model_id: str, s: ft.LoraSettings) -> tuple:
    return ("fine_tuning", "lora", model_id, s)


def template_job(model_id: str, request: str) -> ft.TemplateComparison | None:
    def work(report: ft.Report) -> ft.TemplateComparison:
        return ft.compare_template(load_model(model_id), request, report=report)

    return run_job(
        ("fine_tuning", "template", model_id, request),
        work,
        start_label="Answer both ways",
        estimate_s=template_estimate_s(),
        caps=f"{ft.ANSWER_TOKENS} greedy tokens each; requests capped at "
        f"{ft.REQUEST_CHARS} characters.",
        rerun_label=None,
    )


def lora_result_section(result, data) -> None:
    """The LoRA run's loss, parameters and memory, and held-out answers before and after."""
    k1, k2, k3, k4 = st.columns(4)
    k1.metric(
        "Loss",
        f"{result.losses[-1]:.2f}",
        f"{result.losses[-1] - result.losses[0]:+.2f}",
        delta_color="inverse",
    )
    k2.metric(
        "Trainable (counted by peft)",
        f"{result.trainable:,}",
        help="Equals r(d_in + d_out) summed over the adapted matrices.",
    )
    k3.metric(
        "Adapter kept",
        f"{result.adapter_bytes / 1e6:.1f} MB",
        help=f"The copy it trained was {result.copy_bytes / 1e6:,.0f} MB, freed afterwards.",
    )
    k4.metric(
        "Memory used while training",
        f"{result.peak_rss_rise / 1e9:.2f} GB" if result.peak_rss_rise else "n/a",
        help="Rise of this process's resident memory at its peak during the run.",
    )
    pick = st.selectbox(
        "Held-out prompt",
        range(len(result.answers)),
        key="fine_tuning.held",
        format_func=lambda i: result.answers[i].prompt,
    )
    a1, a2 = st.columns(2)
    a1.markdown("**Before** (the shared model)")
    a1.text(result.answers[pick].before or "(ended at once)")
    a2.markdown("**After** (the LoRA copy)")
    a2.text(result.answers[pick].after or "(ended at once)")
    before = ft.marker_share([a.before for a in result.answers], data.marker)
    after = ft.marker_share([a.after for a in result.answers], data.marker)
    st.caption(
        f"Held-out answers using '{data.marker}': {before:.0%} before, {after:.0%} after. "
        f"Shared model's weights unchanged afterwards: "
        f"{'yes' if result.shared_unchanged else 'NO'} (hash of sampled tensors)."
    )
