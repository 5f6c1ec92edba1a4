"""The preamble every model page calls after `page_frame()`: the model, its guard, the prompt.

    lm, text = model_page("heads")          # model picked in the sidebar + the shared prompt
    ...
    note_truncation(trace.truncated_from, trace.length)

`model_page(*needs)` returns the picked model and the shared prompt (or the default sentence,
with a note, when the prompt is blank); in the presenter view it also shows the prompt box.
With `needs` it first asks `core.inspect.anatomy` whether the model has what the page takes
apart ("decoder": blocks, final norm and head; "heads": recomputable attention heads; "block":
a sequential pre-norm block; "mlp": a known MLP layout); a model without them gets one warning
and the page stops there, never a traceback.
"""

from __future__ import annotations

import streamlit as st

from components.frame import presenter_prompt
from components.models import get_lm, get_prompt
from components.state import DEFAULT_PROMPT
from core.inspect.anatomy import Anatomy, UnsupportedArchitecture, require
from core.inspect.trace import TRACE_TOKEN_CAP
from core.runtime.models import LoadedModel

DECODER_HINT = "Pick SmolLM2 (embedded) or a GPT-2 in the sidebar."


def require_anatomy(lm: LoadedModel, *needs: str) -> Anatomy:
    """The model's anatomy, or the page's warning and `st.stop()` when it lacks `needs`."""
    try:
        return require(lm.model, *needs)
    except UnsupportedArchitecture as exc:
        st.warning(
            f"This page needs a decoder model it can take apart, and the model picked "
            f"in the sidebar is not one here. {exc} {DECODER_HINT}",
            icon="⚠️",
        )
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers the function ends here


def prompt_or_default(text: str | None = None, what: str = "The shared prompt (sidebar)") -> str:
    """`text` (default: the shared prompt), or the default sentence with a note when blank."""
    text = get_prompt() if text is None else text
    if text.strip():
        return text
    st.info(f"{what} is empty, so this page uses a default sentence.")
    return DEFAULT_PROMPT


def note_truncation(total: int, used: int, what: str = "this page") -> None:
    """Say that a long prompt was cut (total tokens, tokens used), and nothing otherwise."""
    if total > used:
        st.info(
            f"The prompt has {total:,} tokens; {what} uses the first {used:,} so that it "
            "stays interactive."
        )


def model_page(*needs: str, prompt: bool = True) -> tuple[LoadedModel, str]:
    """The sidebar's model (checked for `needs`) and the prompt this page should use."""
    lm = get_lm()
    if needs:
        require_anatomy(lm, *needs)
    if not prompt:
        return lm, ""
    presenter_prompt()
    return lm, prompt_or_default()


__all__ = [
    "TRACE_TOKEN_CAP",
    "model_page",
    "note_truncation",
    "prompt_or_default",
    "require_anatomy",
]
