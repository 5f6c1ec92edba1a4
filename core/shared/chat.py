"""The one chat helper: a conversation rendered with the tokenizer's chat template, its prompt
ids, and the ids that end the model's turn.

A conversation is a list of messages `{"role": "system" | "user" | "assistant", "content": str}`.

- `render` writes it with the tokenizer's own chat template (`apply_chat_template`), with the
  assistant's header appended when `add_generation_prompt` is on.
- The one fallback, for a model without a chat template (a base model such as GPT-2): plain
  text, one line per message, `"System: ...\\nUser: ...\\nAssistant: ...\\n"`, and a last
  `"Assistant:"` for the generation prompt. A caller that teaches a template may pass its own
  (`template=`: fine-tuning teaches ChatML to a base model); that is a template, not a fallback.
- Typed special tokens are neutralised in every message: the template pastes each message into
  one string and the tokenizer then parses every added special token anywhere in it, so a
  `<|im_start|>` or `<repo_name>` typed by a user would reach the model as a control token and
  could fake a turn (prompt injection). `neutralise_special_tokens` breaks each one with a space
  after its first character (`<|im_start|>` -> `< |im_start|>`), so it stays text. The list is
  the tokenizer's `added_tokens_decoder` (SmolLM2: 17 special tokens), not
  `all_special_tokens` (3 of them). The tokenization lesson shows the raw injection on purpose
  with `neutralise=False`.
- `prompt_ids` tokenizes the rendered prompt (plus an optional prefill that starts the answer)
  without adding special tokens again when a template wrote them; the plain fallback gets the
  tokenizer's own (a BOS for models that use one).
- `eos_ids` are the ids that end generation: the model's generation config's end-of-sequence
  ids (an int or a list) together with the tokenizer's end-of-sequence token, which chat
  templates use to close the assistant's turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Message = dict[str, str]


def has_template(tokenizer: Any) -> bool:
    """Whether the tokenizer brings a chat template of its own."""
    own = getattr(tokenizer, "chat_template", None)
    return bool(own)


def special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """Every special token the tokenizer parses out of text, longest first."""
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", None) or []}
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token))
    return tuple(sorted((t for t in found if len(t) > 1), key=lambda t: (-len(t), t)))


def special_tokens_in(tokenizer: Any, text: str) -> list[str]:
    """The special tokens typed inside `text`, sorted."""
    return sorted(t for t in special_tokens(tokenizer) if t in text)


def neutralise_special_tokens(text: str, tokenizer: Any) -> str:
    """`text` with every typed special token broken by a space, so it stays ordinary text."""
    for token in special_tokens(tokenizer):
        if token in text:
            text = text.replace(token, token[0] + " " + token[1:])
    return text


def _plain(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    return text + ("Assistant:" if add_generation_prompt else "")


def render(
    tokenizer: Any,
    messages: Sequence[Message],
    add_generation_prompt: bool = True,
    *,
    template: str | None = None,
    neutralise: bool = True,
) -> str:
    """The conversation as text: the chat template's (or `template`'s), else the plain fallback."""
    if neutralise:
        messages = [
            {**m, "content": neutralise_special_tokens(m["content"], tokenizer)} for m in messages
        ]
    template = template or (tokenizer.chat_template if has_template(tokenizer) else None)
    if template is None:
        return _plain(messages, add_generation_prompt)
    return tokenizer.apply_chat_template(
        list(messages),
        chat_template=template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def prompt_ids(
    tokenizer: Any,
    messages: Sequence[Message],
    prefill: str = "",
    *,
    template: str | None = None,
) -> list[int]:
    """The ids of the conversation ready for the assistant's answer, which `prefill` starts."""
    text = render(tokenizer, messages, True, template=template)
    templated = template is not None or has_template(tokenizer)
    if prefill and not templated:
        prefill = " " + prefill  # after "Assistant:"
    return list(tokenizer(text + prefill, add_special_tokens=not templated)["input_ids"])


def user_prompt_ids(tokenizer: Any, user: str, prefill: str = "") -> list[int]:
    """The prompt ids of a conversation of one user message."""
    return prompt_ids(tokenizer, [{"role": "user", "content": user}], prefill)


def eos_ids(lm: Any) -> list[int]:
    """The ids that end generation, sorted: the generation config's and the tokenizer's."""
    config = getattr(getattr(lm, "model", None), "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    found = set(eos) if isinstance(eos, (list, tuple)) else {eos}
    found.add(getattr(lm.tokenizer, "eos_token_id", None))
    return sorted(int(i) for i in found if i is not None)
