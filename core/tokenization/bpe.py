"""Byte-pair encoding trained from scratch, small enough to watch (minbpe-style).

Text is first split into chunks with GPT-2's pattern, so merges never cross a word boundary;
then the most frequent adjacent pair of symbols is merged again and again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import regex

GPT2_SPLIT = regex.compile(
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
BASE_VOCAB = 256  # one symbol per byte: nothing is ever out of vocabulary
MAX_MERGES = 1000
MAX_CORPUS_CHARS = 50_000


@dataclass(frozen=True)
class Merge:
    rank: int  # order learned; applied in this order when encoding
    left: bytes
    right: bytes
    new_id: int
    count: int  # how often the pair occurred when it was merged

    @property
    def merged(self) -> bytes:
        return self.left + self.right


@dataclass(frozen=True)
class BPE:
    merges: tuple[Merge, ...]

    @property
    def vocab_size(self) -> int:
        return BASE_VOCAB + len(self.merges)

    def vocab(self) -> dict[int, bytes]:
        v = {i: bytes([i]) for i in range(BASE_VOCAB)}
        for m in self.merges:
            v[m.new_id] = m.merged
        return v


def _chunks(text: str) -> Counter[tuple[int, ...]]:
    return Counter(tuple(c.encode("utf-8")) for c in GPT2_SPLIT.findall(text))


def _pair_counts(words: Counter[tuple[int, ...]]) -> Counter[tuple[int, int]]:
    pairs: Counter[tuple[int, int]] = Counter()
    for word, freq in words.items():
        for a, b in zip(word, word[1:]):
            pairs[(a, b)] += freq
    return pairs


def _merge_word(word: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_bpe(corpus: str, num_merges: int) -> BPE:
    """Learn up to `num_merges` merges; stops early when no pair occurs twice."""
    words = _chunks(corpus[:MAX_CORPUS_CHARS])
    vocab = {i: bytes([i]) for i in range(BASE_VOCAB)}
    merges: list[Merge] = []
    for rank in range(min(num_merges, MAX_MERGES)):
        pairs = _pair_counts(words)
        if not pairs:
            break
        # ties go to the pair with the smallest token ids (left id first, then right id), so
        # training is deterministic; a merged token's id is its rank + 256, not its bytes' order
        pair, count = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if count < 2:
            break
        new_id = BASE_VOCAB + rank
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        merges.append(Merge(rank, vocab[pair[0]], vocab[pair[1]], new_id, count))
        words = Counter({_merge_word(w, pair, new_id): f for w, f in words.items()})
    return BPE(tuple(merges))


def encode(bpe: BPE, text: str) -> list[int]:
    """Apply the merges in the order they were learned, chunk by chunk."""
    ids_of = {m.merged: m.new_id for m in bpe.merges}
    rank_of = {(m.left, m.right): m.rank for m in bpe.merges}
    out: list[int] = []
    for chunk in GPT2_SPLIT.findall(text):
        parts = [bytes([b]) for b in chunk.encode("utf-8")]
        while len(parts) > 1:
            ranked = [
                (rank_of.get(pair, 1 << 30), i) for i, pair in enumerate(zip(parts, parts[1:]))
            ]
            rank, i = min(ranked)
            if rank == 1 << 30:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        out.extend(ids_of[p] if len(p) > 1 else p[0] for p in parts)
    return out


def decode(bpe: BPE, ids: list[int]) -> str:
    vocab = bpe.vocab()
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
