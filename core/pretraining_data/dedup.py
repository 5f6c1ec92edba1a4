"""Exact dedup (a hash of the normalised text) and near dedup (MinHash with banded LSH).

MinHash follows datasketch 2.0.0's default scheme ("affine32") exactly: SHA-1's first four
bytes as the shingle hash, a MurmurHash3 finaliser, then h -> a*h + b mod 2^32 per permutation,
with a, b drawn from `np.random.RandomState(seed)`; vectorised over all shingles at once.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.pretraining_data.corpus import Doc


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """Index -> index of the first text with the same normalised content (later copies only)."""
    first: dict[bytes, int] = {}
    dups = {}
    for i, text in enumerate(texts):
        h = hashlib.sha1(normalise(text).encode("utf-8")).digest()
        if h in first:
            dups[i] = first[h]
        else:
            first[h] = i
    return dups


MAX32 = np.uint64(0xFFFFFFFF)


def shingles(text: str, k: int) -> set[str]:
    """Character k-grams of the normalised text."""
    s = normalise(text)
    if len(s) <= k:
        return {s}
    return {s[i : i + k] for i in range(len(s) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters: odd a and any b, mod 2^32."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hashes(shingle_set: Sequence[str] | set[str]) -> np.ndarray:
    """First four bytes of SHA-1, little-endian (datasketch's sha1_hash32), pre-mixed: (S,)."""
    raw = b"".join(hashlib.sha1(s.encode("utf-8")).digest()[:4] for s in shingle_set)
    return _fmix32(np.frombuffer(raw, dtype="<u4").astype(np.uint32))


def minhash_signatures(
    sets: Iterable[Collection[str]], num_perm: int, seed: int = 1, chunk: int = 8_192
) -> np.ndarray:
    """One row of num_perm minimum permuted hashes per set: (n, num_perm) uint32.

    The sets are read one at a time (a generator serves), and their hashes are reduced in
    blocks of about `chunk` shingles, so memory stays at a few MB whatever the corpus size."""
    a, b = permutations(num_perm, seed)
    rows: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def reduce_pending() -> None:
        flat = np.concatenate(pending)  # (S,) the block's hashes, document after document
        phv = flat[:, None] * a[None, :] + b[None, :]  # (S, num_perm), wraps mod 2^32
        offsets = np.cumsum([0] + [len(h) for h in pending[:-1]])
        rows.append(np.minimum.reduceat(phv, offsets, axis=0))
        pending.clear()

    size = 0
    for one in sets:
        hashes = shingle_hashes(one)
        if not len(hashes):
            raise ValueError("an empty shingle set has no MinHash")
        if pending and size + len(hashes) > chunk:
            reduce_pending()
            size = 0
        pending.append(hashes)
        size += len(hashes)
    if pending:
        reduce_pending()
    if not rows:
        return np.empty((0, num_perm), dtype=np.uint32)
    return np.concatenate(rows).astype(np.uint32, copy=False)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def candidate_probability(
    similarity: np.ndarray | float, bands: int, rows: int
) -> np.ndarray | float:
    """P(two documents share at least one band) = 1 - (1 - s^r)^b: the LSH S-curve."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """The similarity where the S-curve is steepest, about (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


def lsh_candidates(signatures: np.ndarray, bands: int) -> set[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on every row of at least one band."""
    n, num_perm = signatures.shape
    rows = num_perm // bands
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for i in range(n):
            buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            for x, i in enumerate(members):
                pairs.update((i, j) for j in members[x + 1 :])
    return pairs


def near_duplicates(
    signatures: np.ndarray,
    bands: int,
    threshold: float,
    candidates: set[tuple[int, int]] | None = None,
) -> dict[int, tuple[int, float]]:
    """Row -> (earlier row, estimated Jaccard) for rows matching an earlier one: the later copy
    of each candidate pair whose estimate reaches the threshold is dropped."""
    if candidates is None:
        candidates = lsh_candidates(signatures, bands)
    found: dict[int, tuple[int, float]] = {}
    for i, j in sorted(candidates, key=lambda p: (p[1], p[0])):
        est = estimated_jaccard(signatures[i], signatures[j])
        if est >= threshold and j not in found:
            found[j] = (i, est)
    return found


@dataclass(frozen=True)
class JaccardCheck:
    pair: tuple[str, ...]  # "near-duplicate pair" or "random pair"
    true: np.ndarray  # exact Jaccard of the shingle sets
    estimated: np.ndarray  # share of equal MinHash values

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean(np.abs(self.true - self.estimated)))


def minhash_check(
    docs: Sequence[Doc],
    k: int,
    signatures: np.ndarray,
    n_random: int = 200,
    seed: int = 0,
) -> JaccardCheck:
    """MinHash estimates against exact Jaccard of the k-shingle sets: every injected
    near-duplicate with its original, plus random pairs (mostly dissimilar) to cover the low
    end. Only the documents in a pair are shingled."""
    row = {d.id: i for i, d in enumerate(docs)}
    pairs = [
        (row[d.origin], row[d.id], "near-duplicate pair") for d in docs if d.kind == "near_dup"
    ]
    rng = random.Random(seed)
    pairs += [(*rng.sample(range(len(docs)), 2), "random pair") for _ in range(n_random)]
    sets: dict[int, set[str]] = {}

    def shingled(i: int) -> set[str]:
        if i not in sets:
            sets[i] = shingles(docs[i].text, k)
        return sets[i]

    true = np.array([jaccard(shingled(i), shingled(j)) for i, j, _ in pairs])
    est = np.array([estimated_jaccard(signatures[i], signatures[j]) for i, j, _ in pairs])
    return JaccardCheck(tuple(p[2] for p in pairs), true, est)
