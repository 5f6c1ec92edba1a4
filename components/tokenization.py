"""Cached tokenizers and charts for the tokenization page."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from components.models import get_lm
from core.runtime.models import encoder_path
from core.tokenization import (
    OPENAI_ENCODINGS,
    ChatTokens,
    HFTokenizer,
    Tokenized,
    bpe,
    chat_template_tokens,
    openai_tokenizer,
    tokenize,
    typed_special_tokens,
)


@st.cache_resource(show_spinner=False)
def _wordpiece() -> HFTokenizer:
    from transformers import AutoTokenizer

    return HFTokenizer(
        "all-MiniLM-L6-v2 (WordPiece)",
        AutoTokenizer.from_pretrained(encoder_path()),
        lossy_note="lower-cases, strips accents, and maps unknown characters to [UNK]",
    )


@st.cache_resource(show_spinner=False)
def _openai(name: str):
    return openai_tokenizer(name)


@st.cache_resource(show_spinner=False, max_entries=4)
def _lm_tokenizer(model_id: str) -> HFTokenizer:
    # cached: telling byte-level BPE apart serialises the whole tokenizer to JSON
    tok = get_lm().tokenizer
    wrapped = HFTokenizer(model_id.split("/")[-1], tok)
    wrapped.name += " (byte-level BPE)" if wrapped.byte_level else " (tokenizer)"
    return wrapped


def tokenizers() -> list:
    from components.models import current_model_id

    get_lm()  # falls back to the embedded model if the picked one cannot load
    return [
        _lm_tokenizer(current_model_id()),
        _wordpiece(),
        *(_openai(n) for n in OPENAI_ENCODINGS),
    ]


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_tokenize(
    _tok, key: tuple[str, str], text: str, parse_special: bool = False
) -> Tokenized:
    return tokenize(_tok, text, parse_special)


def tokenize_all(text: str, parse_special: bool = False) -> list[Tokenized]:
    """Every tokenizer on the text; typed special tokens stay ordinary text by default."""
    from components.models import current_model_id

    return [
        _cached_tokenize(t, (current_model_id(), t.name), text, parse_special) for t in tokenizers()
    ]


def special_tokens_frame(text: str) -> pd.DataFrame:
    """For each tokenizer: the special tokens typed in the text, and the count either way."""
    ordinary, parsed = tokenize_all(text), tokenize_all(text, parse_special=True)
    rows = []
    for tok, o, p in zip(tokenizers(), ordinary, parsed, strict=True):
        typed = typed_special_tokens(tok, text)
        rows.append(
            {
                "tokenizer": tok.name,
                "special tokens typed": ", ".join(typed) or "none",
                "tokens as ordinary text": o.count,
                "tokens with specials parsed": p.count,
                "control ids produced": ", ".join(
                    sorted({f"{x.id} {x.text}" for x in p.pieces if x.text in typed})
                )
                or "none",
            }
        )
    return pd.DataFrame(rows)


@st.cache_data(show_spinner="Training BPE…", max_entries=16)
def cached_bpe(corpus: str, merges: int) -> bpe.BPE:
    return bpe.train_bpe(corpus, merges)


def chat_tokens(messages: tuple[tuple[str, str], ...]) -> ChatTokens | None:
    tok = get_lm().tokenizer
    return chat_template_tokens(tok, [{"role": r, "content": c} for r, c in messages])


def token_count_chart(results: list[Tokenized], n_chars: int) -> alt.Chart:
    df = pd.DataFrame(
        {
            "tokenizer": [r.name for r in results],
            "tokens": [r.count for r in results],
            "characters per token": [n_chars / r.count if r.count else 0.0 for r in results],
            "vocabulary": [r.vocab_size for r in results],
        }
    )
    base = alt.Chart(df).encode(
        y=alt.Y("tokenizer:N", sort=None, title=None, axis=alt.Axis(labelLimit=320)),
        x=alt.X("tokens:Q", title="tokens for this text"),
        tooltip=[
            "tokenizer",
            "tokens",
            alt.Tooltip("characters per token:Q", format=".2f"),
            alt.Tooltip("vocabulary:Q", format=","),
        ],
    )
    bars = base.mark_bar(color="#4C6EF5")
    labels = base.mark_text(align="left", dx=3).encode(text="tokens:Q")
    return (bars + labels).properties(height=40 * len(results) + 20)


def merges_frame(model: bpe.BPE) -> pd.DataFrame:
    def show(b: bytes) -> str:
        return b.decode("utf-8", errors="backslashreplace").replace(" ", "·").replace("\n", "↵")

    return pd.DataFrame(
        {
            "rank": [m.rank + 1 for m in model.merges],
            "left": [show(m.left) for m in model.merges],
            "right": [show(m.right) for m in model.merges],
            "new token": [show(m.merged) for m in model.merges],
            "id": [m.new_id for m in model.merges],
            "pair count": [m.count for m in model.merges],
        }
    )
