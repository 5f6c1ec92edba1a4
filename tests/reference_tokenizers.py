"""Independent references for OpenAI's encodings, which the app reads through tiktoken:
GitHub's `bpe-openai` (its own Rust BPE, tiktoken's interface) for cl100k_base and o200k_base,
and transformers' GPT2TokenizerFast built from GPT-2's original files for gpt2."""

from __future__ import annotations

import json
from functools import lru_cache

from core.tokenization import HFTokenizer, _gpt2_files


@lru_cache(maxsize=1)
def hf_gpt2() -> HFTokenizer:
    """GPT-2's tokenizer in transformers, from encoder.json and vocab.bpe (no download)."""
    from transformers import GPT2TokenizerFast

    enc, bpe = _gpt2_files()
    vocab = json.loads(enc.read_text(encoding="utf-8"))
    lines = bpe.read_text(encoding="utf-8").split("\n")[1:]  # line 0 is a version tag
    merges = [tuple(line.split()) for line in lines if line.strip()]
    return HFTokenizer("gpt2", GPT2TokenizerFast(vocab=vocab, merges=merges))


class _HFAsTiktoken:
    """The few tiktoken calls the tests make, answered by a transformers tokenizer."""

    def __init__(self, tok: HFTokenizer, eot: str) -> None:
        self.tok = tok
        self.eot_token = tok.tok.convert_tokens_to_ids(eot)

    def encode_ordinary(self, text: str) -> list[int]:
        return self.tok.encode(text)

    def encode(self, text: str, allowed_special: str = "all") -> list[int]:
        assert allowed_special == "all"
        return self.tok.encode_special(text)


@lru_cache(maxsize=4)
def reference_encoding(name: str):
    if name == "gpt2":
        return _HFAsTiktoken(hf_gpt2(), "<|endoftext|>")
    import bpe_openai

    return bpe_openai.get_encoding(name)
