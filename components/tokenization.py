"""Cached tokenizers and charts for the tokenization page."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from components.models import get_lm
from components.tokens import token_strip
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

SHOW_CAP = 400  # chips drawn per tokenizer; counts always cover the whole text


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


def chat_template_section(text: str) -> None:
    """The chat template around the typed text: its tokens, injected control tokens, and the
    same messages encoded safely."""
    system = st.text_input(
        "System message", "You are a helpful assistant.", key="tokenization.system", max_chars=2000
    )
    user = text[:2000] or " "
    reply = st.text_input(
        "Assistant reply", "Sure, here it is.", key="tokenization.reply", max_chars=2000
    )
    messages = tuple(
        (r, c) for r, c in (("system", system), ("user", user), ("assistant", reply)) if c
    )
    chat = chat_tokens(messages)
    if chat is None:
        st.info("The selected model has no chat template (it is a plain language model).")
    else:
        st.caption(
            f"{len(chat.pieces)} tokens, {sum(chat.special)} of them special; the user "
            "message is the text above (first 2,000 characters)."
        )
        if chat.injected:
            st.warning(
                f"Prompt injection: {chat.injected} control token(s) (blue) were typed "
                "inside a message, and the model reads them as real turn markers."
            )
        token_strip(
            [p.text for p in chat.pieces],
            ids=[p.id for p in chat.pieces],
            values=[-0.8 if f else 0.8 if s else 0.0 for s, f in zip(chat.special, chat.forged)],
            titles=[
                "control token typed in a message (injected)"
                if f
                else "control token of the template"
                if s
                else "text"
                for s, f in zip(chat.special, chat.forged)
            ],
        )
        st.text(chat.rendered[:4000])
        st.markdown(
            f"**Encoded safely** (message text as ordinary text): "
            f"{len(chat.safe_pieces)} tokens, {sum(chat.safe_special)} of them special."
        )
        token_strip(
            [p.text for p in chat.safe_pieces],
            ids=[p.id for p in chat.safe_pieces],
            values=[0.8 if s else 0.0 for s in chat.safe_special],
        )


def bpe_section(text: str) -> None:
    """BPE trained on a chosen corpus: the vocabulary slider, the typed text in its tokens, the
    merges learned."""
    corpus_choice = st.radio(
        "Training corpus",
        ["English story (shipped)", "Python code (this app's BPE trainer)", "My own text"],
        horizontal=True,
        key="tokenization.corpus",
    )
    if corpus_choice.startswith("English"):
        corpus = (Path(__file__).parent.parent / "data" / "bpe_corpus.txt").read_text()
    elif corpus_choice.startswith("Python"):
        corpus = Path(bpe.__file__).read_text()
    else:
        corpus = st.text_area(
            "Corpus to train on",
            key="tokenization.own_corpus",
            height=120,
            max_chars=bpe.MAX_CORPUS_CHARS,
            placeholder="Paste a few paragraphs of any language…",
        )
    if not corpus.strip():
        st.info("Paste some text to train on.")
    else:
        vocab = st.slider(
            "Vocabulary size",
            bpe.BASE_VOCAB + 1,
            bpe.BASE_VOCAB + 500,
            bpe.BASE_VOCAB + 100,
            key="tokenization.vocab_size",
            help="256 byte tokens plus one new token per merge (500 merges at most).",
        )
        model = cached_bpe(corpus, vocab - bpe.BASE_VOCAB)
        if model.vocab_size < vocab:
            st.caption(f"Stopped after {len(model.merges)} merges: no pair occurs twice any more.")
        ids = bpe.encode(model, text[:5000])
        vocab_map = model.vocab()
        c1, c2, c3 = st.columns(3)
        c1.metric("Vocabulary", f"{model.vocab_size:,}")
        c2.metric("Your text in tokens", f"{len(ids):,}", help="First 5,000 characters.")
        c3.metric("Bytes per token", f"{len(text[:5000].encode()) / max(1, len(ids)):.2f}")
        token_strip(
            [vocab_map[i].decode("utf-8", errors="replace") for i in ids[:SHOW_CAP]],
            ids=ids[:SHOW_CAP],
        )
        st.dataframe(merges_frame(model), hide_index=True, height=300, width="stretch")


def tokenizers_section(results, text: str) -> None:
    """The summary table of every tokenizer, then each one's tokens as chips."""
    summary = pd.DataFrame(
        {
            "tokenizer": [r.name for r in results],
            "tokens": [r.count for r in results],
            "chars / token": [round(len(text) / r.count, 2) if r.count else None for r in results],
            "vocabulary size": [r.vocab_size for r in results],
            "pieces that are part of a character": [
                sum(p.partial for p in r.pieces) for r in results
            ],
            "decode(encode(text)) == text": ["yes" if r.round_trip else "no" for r in results],
        }
    )
    st.dataframe(
        summary,
        hide_index=True,
        width="stretch",
        column_config={  # short headers, so every column fits a projector's width uncut
            "vocabulary size": st.column_config.NumberColumn("vocabulary"),
            "pieces that are part of a character": st.column_config.NumberColumn(
                "partial pieces", help="Pieces that are only part of a character (bytes)."
            ),
            "decode(encode(text)) == text": st.column_config.TextColumn(
                "round trip", help="decode(encode(text)) == text"
            ),
        },
    )

    for r in results:
        st.markdown(f"**{r.name}**: {r.count:,} tokens")
        shown = r.pieces[:SHOW_CAP]
        token_strip(
            [p.text for p in shown],
            ids=[p.id for p in shown],
            titles=[f"id {p.id}" + (" (part of a character)" if p.partial else "") for p in shown],
        )
        if r.count > SHOW_CAP:
            st.caption(f"Showing the first {SHOW_CAP} of {r.count:,} tokens.")
        if not r.round_trip:
            st.caption(
                "Decoding these ids does not give back the original text: this tokenizer "
                "lower-cases, strips accents or maps unknown characters to [UNK]. Decoded:"
            )
            st.text(r.decoded[:2000])
