"""Is it just copying the training lyrics? Copied n-grams, the longest copied span, and a
sampler guard that never copies more than N characters in a row.

The training text is indexed by n-gram: every n-gram of it gets a 64-bit polynomial hash
(wrapping arithmetic, so hash(x_1..x_n+1) = hash(x_1..x_n) * B + x_n+1), and the hashes of one
n are sorted once, then searched. Two different n-grams share a hash with probability about
2**-64 per pair: for a 4M-character corpus, about one chance in a million of one false "copied".
"""

from __future__ import annotations

from typing import Any

import numpy as np

BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication by it is a bijection mod 2**64
REPORT_NS = (4, 8, 16)
SPAN_N = 8  # the shortest run of characters shown as copied: a 4-gram is often a set phrase


def _as_u64(ids: Any) -> np.ndarray:
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return np.asarray(ids).astype(np.uint64) + np.uint64(1)  # +1: id 0 still counts


def ngram_hashes(ids: Any, n: int) -> np.ndarray:
    """Hash of every n-gram of ids (N,) -> (N-n+1,) uint64 (empty when N < n)."""
    x = _as_u64(ids)
    m = len(x) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    for k in range(n):  # numpy wraps uint64 arithmetic: exactly mod 2**64
        h = h * BASE + x[k : k + m]
    return h


class TrainingIndex:
    """The training text's n-grams, for any n asked (each n sorted once, then kept)."""

    def __init__(self, train_ids: Any, vocab_size: int) -> None:
        self.ids = train_ids.numpy() if hasattr(train_ids, "numpy") else np.asarray(train_ids)
        self.vocab_size = vocab_size
        self._grams: dict[int, np.ndarray] = {}

    def grams(self, n: int) -> np.ndarray:
        if n not in self._grams:
            self._grams[n] = np.unique(ngram_hashes(self.ids, n))
        return self._grams[n]

    def contains(self, hashes: np.ndarray, n: int) -> np.ndarray:
        """Which of these n-gram hashes occur in the training text. (M,) -> (M,) bool."""
        g = self.grams(n)
        if len(g) == 0 or len(hashes) == 0:
            return np.zeros(len(hashes), dtype=bool)
        pos = np.minimum(np.searchsorted(g, hashes), len(g) - 1)
        return g[pos] == hashes

    def copied_share(self, ids: Any, n: int) -> float | None:
        """Share of the n-grams of ids that occur in the training text (None: text too short)."""
        h = ngram_hashes(ids, n)
        return float(self.contains(h, n).mean()) if len(h) else None

    def longest_copy(self, ids: Any) -> int:
        """Length of the longest span of ids that occurs in the training text. A copied span of
        length L contains copied spans of every shorter length, so a bisection finds it."""
        lo, hi = 0, len(ids)  # lo is copied (0 trivially); longer than hi cannot be
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.contains(ngram_hashes(ids, mid), mid).any():
                lo = mid
            else:
                hi = mid - 1
        return lo

    def report(self, ids: Any) -> dict[str, Any]:
        """Per sample: the copied share of its 4-, 8- and 16-grams, and its longest copy."""
        shares = {str(n): self.copied_share(ids, n) for n in REPORT_NS}
        return {"copied_ngrams": shares, "longest_copy": self.longest_copy(ids)}

    def copied_spans(self, ids: Any, n: int = SPAN_N) -> list[tuple[int, int]]:
        """[start, end) spans of ids covered by n-grams that occur in the training text, the
        overlapping ones merged: where a reader sees copied text (the page highlights them)."""
        hit = np.flatnonzero(self.contains(ngram_hashes(ids, n), n))  # copied n-gram starts
        spans: list[tuple[int, int]] = []
        for i in hit.tolist():
            if spans and i <= spans[-1][1]:
                spans[-1] = (spans[-1][0], i + n)
            else:
                spans.append((i, i + n))
        return spans

    def extensions(self, tail: list[int], n: int) -> np.ndarray:
        """(V,) bool: the characters c for which tail[-n:] + [c] occurs in the training text,
        i.e. which would make a copied span of n + 1 characters."""
        if len(tail) < n:
            return np.zeros(self.vocab_size, dtype=bool)
        h = ngram_hashes(tail[len(tail) - n :], n)[0] if n else np.uint64(0)
        # arrays, not scalars: numpy wraps array arithmetic silently (scalars warn)
        cand = np.full(self.vocab_size, h, dtype=np.uint64) * BASE + np.arange(
            1, self.vocab_size + 1, dtype=np.uint64
        )  # (V,)
        return self.contains(cand, n + 1)


def render_report(sample: int, r: dict[str, Any]) -> str:
    parts = ", ".join(
        f"{n}-grams {v:.0%}" if v is not None else f"{n}-grams -"
        for n, v in r["copied_ngrams"].items()
    )
    return (
        f"sample {sample}: copied from the training text: {parts}; "
        f"longest copy {r['longest_copy']} characters"
    )
