"""16 Fine-tuning & Instruction Tuning: the chat template and loss mask, and LoRA trained on a few examples."""

from __future__ import annotations

import streamlit as st

from components import fine_tuning as view
from components.frame import intro, page_frame, show_code
from components.models import current_model_id
from components.preamble import model_page, require_anatomy
from components.questions import check_yourself
from core import fine_tuning as ft
from core.shared.chat import special_tokens_in
from core.shared.published import count_parameters

page_frame()
lm, _ = model_page(prompt=False)
model_id = current_model_id()
data = view.cached_data()
template, own_template = ft.template_of(lm.tokenizer)

with intro():
    st.markdown(
        "A pretrained model continues text; an *assistant* is the same model fine-tuned on "
        "conversations. Each conversation is written out with a **chat template**: special tokens "
        "mark where a turn starts, who speaks and where it ends. Training uses the ordinary "
        "next-token loss, but only the assistant's tokens (and its end-of-turn marker) are "
        "**targets**: the system prompt, the user's words and the headers are context. **LoRA** "
        "then makes fine-tuning cheap: every weight W stays frozen and each adapted matrix learns "
        "a low-rank update BA, only r(d_in + d_out) numbers instead of d_in x d_out."
    )
if not own_template:
    st.info(
        f"{model_id} has no chat template of its own (a base model), so this page uses "
        "ChatML; its markers are plain text to this tokenizer, not special tokens."
    )

problem = ft.template_problem(lm.tokenizer)
if problem:
    st.warning(f"{model_id}: {problem} Pick the embedded SmolLM2 in the sidebar.")
    st.stop()

st.subheader("1 · The chat template and the loss mask")
pick = st.selectbox(
    "A training conversation",
    range(len(data.examples)),
    key="fine_tuning.example",
    format_func=lambda i: data.examples[i][0],
)
user, answer = data.examples[pick]
chat = view.cached_masked_chat(model_id, user, answer)
counted, total = view.cached_dataset_share(model_id)
m1, m2, m3 = st.columns(3)
m1.metric("Tokens in this conversation", len(chat.ids))
m2.metric("Counted by the loss", f"{chat.counted} ({chat.share:.0%})")
m3.metric(
    f"Counted over all {len(data.examples)} training chats",
    f"{counted / total:.0%}",
    help=f"{counted} of {total} tokens",
)
view.mask_strip(model_id, chat)
st.caption(
    "Orange tokens are targets (the assistant's answer and its end-of-turn token); plain "
    "ones are context the model reads but is never graded on. Hover a token for its role."
)
with st.expander("The template as text"):
    st.code(ft.render(lm.tokenizer, ft.conversation(user, answer), False), language=None)

st.subheader("2 · The same request with and without the template")
request = st.text_input(
    "Request", data.held_out[0], key="fine_tuning.request", max_chars=ft.REQUEST_CHARS
)
if not request.strip():
    st.info("The request is empty, so this uses a held-out prompt instead.")
    request = data.held_out[0]
typed = special_tokens_in(lm.tokenizer, request)
if typed:
    st.warning(
        f"Your request contains {', '.join(typed)}: the tokenizer would read typed special "
        "tokens as real control tokens and fake a turn (prompt injection), so a space is "
        "put after their first character before the model reads them."
    )
compared = view.template_job(model_id, request)
if compared is not None:
    c1, c2 = st.columns(2)
    c1.markdown("**Bare text** (no template: just a fragment of text to continue)")
    c1.text(
        compared.plain_answer.strip() or "(nothing: its first token was the end-of-turn marker)"
    )
    if compared.plain_forced:
        c1.caption("The same bare text with the end-of-turn tokens forbidden, so it must go on:")
        c1.text(compared.plain_forced)
    c2.markdown("**In the chat template** (the model answers as the assistant)")
    c2.text(compared.chat_answer or "(ended at once)")

st.subheader("3 · LoRA: fine-tune a copy on a few examples")
st.markdown(
    f"The {len(data.examples)} shipped training chats teach one visible style: "
    f"*{data.style}* The held-out prompts are never trained on."
)
require_anatomy(lm, "decoder")  # LoRA goes into the blocks: a model without them stops here
modules = ft.adaptable_modules(lm.model)
names = [m.name for m in modules]
c1, c2, c3 = st.columns([1, 2, 1])
rank = c1.select_slider(
    "Rank r", [1, 2, 4, 8, 16, 32, ft.MAX_RANK], 8, key="fine_tuning.rank", bind="query-params"
)
targets = tuple(
    c2.multiselect(
        "Adapted matrices (in every block)",
        names,
        list(ft.default_targets(modules)),
        key="fine_tuning.targets",
    )
)
steps = c3.slider(
    "Training steps", 5, ft.MAX_STEPS, 20, 5, key="fine_tuning.steps", bind="query-params"
)
layers = len(ft.decoder_layers(lm.model))
trainable = ft.lora_parameter_formula(lm.model, targets, rank)
all_params = count_parameters(lm.model)
m1, m2, m3 = st.columns(3)
m1.metric("Trainable LoRA parameters", f"{trainable:,}")
m2.metric("Share of the model", f"{trainable / all_params:.3%}", help=f"of {all_params:,}")
m3.metric("Frozen parameters", f"{all_params:,}")
if not targets:
    st.warning("Pick at least one matrix to adapt; nothing would be trained.")
    st.stop()
lora = view.lora_frame(modules, targets, rank, layers)
st.dataframe(  # thousands separated: 2,654,208 frozen weights against 33,792 trained
    lora,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="localized") for c in lora.columns[1:]},
)

result = view.fine_tune_job(model_id, ft.LoraSettings(rank=rank, targets=targets, steps=steps))
if result is not None:
    view.lora_result_section(result, data)

show_code(ft.masked_chat, ft.masked_lm_loss, ft.lora_parameter_formula, ft.lora_copy, ft._train)

check_yourself()
