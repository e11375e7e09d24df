"""Song-aware adaptation: a count cache of the text already read, mixed into the static model.

Songs repeat: a chorus comes back, a hook line returns. A static model predicts the third
chorus as if it had never seen the first two. The cache remembers the text read so far (the
held-out text as it is scored, or the song as it is generated) and predicts from it:

    match(i)   the longest L <= CACHE_ORDER - 1 such that the L characters before position i
               occurred earlier in the text, followed by some character
    p_cache    how often each character followed that context earlier / how often it occurred
    p(w)       = (1 - lam[L]) p_static(w) + lam[L] p_cache(w)      (lam[-1] = 0: no match)

Only characters before position i are ever used for position i (Kuhn & De Mori's cache model;
Grave et al. 2017). The weights lam[L], one per match length, are fitted by EM on the tune
slice at the end of the training text (the same song structure, never the held-out text) and
travel in the checkpoint. The cache resets at blank lines when the corpus separates its
documents with them (poems, songs): what one poem repeats says nothing about the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from charlm.data.vocab import Vocab

CACHE_ORDER = 8  # contexts of up to 7 characters
MIN_BUCKET = 20  # tune positions a match length needs for a weight of its own
# Generation: a block of 1 to MAX_BLOCK_LINES lines at most MAX_REPEATS times in a row. Measured
# on the Jay Chou lyrics (5,945 lines): a line comes twice in a row 156 times and three times 3
# times; blocks of 2-8 lines twice 69 times, three or four times 11 times: 99.8 % of what the
# corpus repeats stays allowed, and a generated song cannot cycle forever. And a line at most
# MAX_IN_WINDOW times among WINDOW_LINES consecutive lines: true of 98.5 % of its lines (a
# chorus line comes back, but a song is not one line).
MAX_REPEATS = 2
MAX_BLOCK_LINES = 8
# Generation scales the fitted weights by this. They are fitted on real text, whose history is
# real; a generator's history is its own output, and at full strength it copies itself: 48.8 %
# of generated Jay Chou lines repeated one of the 15 before them, against 16.7 % in the real
# lyrics. At 0.8: 20.1 % (Jay Chou, real 16.7 %) and 2.9 % (Tang poems, real 3.4 %); at 0.7
# 11.4 % and 1.5 % (benchmarks/adapt.py, 16 samples of 40 lines).
GENERATION_STRENGTH = 0.8
# Within a line, a repeated unit (哈哈哈, 每天每天每天) may fill at most this many characters in a
# row: the longest such run is 12 characters in the Jay Chou lyrics and 10 in the Tang poems
# (units of 1 to 6 characters).
MAX_RUN_CHARS = 12
MAX_UNIT_CHARS = 6
MAX_IN_WINDOW = 3
WINDOW_LINES = 16


@dataclass(frozen=True)
class Adaptation:
    """The fitted cache: lam[L + 1] for match length L = -1 (none), 0, ..., order - 1."""

    weights: tuple[float, ...]
    reset_ids: tuple[int, ...] = ()  # a blank line (these ids twice in a row) resets the cache

    @property
    def order(self) -> int:
        return len(self.weights) - 1

    def to_payload(self) -> dict[str, Any]:
        return {"weights": list(self.weights), "reset_ids": list(self.reset_ids)}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Adaptation:
        weights = tuple(float(w) for w in d["weights"])
        if not 2 <= len(weights) <= 33 or not all(0.0 <= w < 1.0 for w in weights):
            raise ValueError("adaptation weights must be 2-33 numbers in [0, 1)")
        return cls(weights, tuple(int(i) for i in d.get("reset_ids", ())))

    def mix(self, static_logp: torch.Tensor, ids: Any) -> torch.Tensor:
        """ln p of ids[1:] (N-1,) under the adapted model, from the static ln p (N-1,)."""
        p_cache, match = cache_probs(ids, self.order, self.reset_ids)
        lam = torch.from_numpy(np.asarray(self.weights)[match + 1])  # (N-1,)
        return _mix(static_logp.double(), torch.from_numpy(p_cache), lam)


def blank_line_ids(vocab: Vocab) -> tuple[int, ...]:
    """The ids whose doubling marks a document boundary: the line break, if the vocabulary
    has one."""
    newline = vocab.id_of("\n")
    return (newline,) if newline is not None else ()


def _mix(static_logp: torch.Tensor, p_cache: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """ln((1 - lam) p_static + lam p_cache), in log space so a tiny p_static never rounds to 0."""
    return torch.logaddexp(static_logp + torch.log1p(-lam), torch.log(lam * p_cache))


def _as_np(ids: Any) -> np.ndarray:
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _earlier(keys: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements have the same key. (M,) -> (M,)."""
    m = len(keys)
    order = np.argsort(keys, kind="stable")  # stable: equal keys stay in text order
    sk = keys[order]
    first = np.r_[True, sk[1:] != sk[:-1]] if m else np.zeros(0, dtype=bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(m), 0))
    out = np.empty(m, dtype=np.int64)
    out[order] = np.arange(m) - group_start
    return out


def _segments(seq: np.ndarray, reset_ids: Sequence[int]) -> np.ndarray:
    """Document number of each position (N,): a new one starts after each blank line (two
    reset ids in a row; the blank line itself still belongs to the document it ends)."""
    starts = np.zeros(len(seq), dtype=bool)
    if reset_ids and len(seq) > 2:
        starts[2:] = np.isin(seq[1:-1], reset_ids) & np.isin(seq[:-2], reset_ids)
    return np.cumsum(starts)


def cache_probs(
    ids: Any, order: int = CACHE_ORDER, reset_ids: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """For each target ids[i], i = 1..N-1: p_cache(ids[i]) from ids[:i] only, and the match
    length L (-1 = no context seen before). Returns (N-1,) float64 and (N-1,) int64.

    Every L-gram gets an exact id (np.unique over (id of its first L-1 characters) * V + last,
    as in the count model), and "seen earlier" is a stable sort: no Python loop over the text.
    """
    seq = _as_np(ids)
    n = len(seq)
    if n < 2:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    v = int(seq.max()) + 1
    doc = _segments(seq, reset_ids)  # (N,)
    n_docs = int(doc[-1]) + 1
    tgt, tdoc, pos = seq[1:], doc[1:], np.arange(1, n)  # targets (N-1,) and where they are
    p, match = np.zeros(n - 1), np.full(n - 1, -1, dtype=np.int64)
    gram = np.zeros(n, dtype=np.int64)  # id of the L-gram ending at each position (-1: none)
    for length in range(order):
        # the context of target i is the L-gram ending at i-1, inside the target's document
        ctx = gram[:-1]
        ok = (ctx >= 0) & (doc[np.maximum(pos - length, 0)] == tdoc)
        key = np.where(ok, ctx * n_docs + tdoc, -1)  # the same context in the same document
        seen = _earlier(key)  # earlier targets after this context
        joint = _earlier(np.where(ok, key * v + tgt, -1))  # ... that were this character
        hit = ok & (seen > 0)
        p = np.where(hit, joint / np.maximum(seen, 1), p)
        match = np.where(hit, length, match)
        # the (L+1)-grams ending at each position: the L-gram before it, then its character
        prev = np.r_[0 if length == 0 else -1, gram[:-1]]
        uniq, inv = np.unique(np.where(prev >= 0, prev * v + seq, -1), return_inverse=True)
        gram = np.where(prev >= 0, inv.reshape(-1) - int(uniq[0] < 0), -1)
    return p, match


def fit_weights(
    static_logp: torch.Tensor, p_cache: np.ndarray, match: np.ndarray, order: int, iters: int = 50
) -> tuple[float, ...]:
    """EM for lam per match length on the tune slice; lengths with fewer than MIN_BUCKET
    positions share the weight fitted over all of them."""
    ps = static_logp.double().exp().numpy()
    pc = p_cache

    def em(mask: np.ndarray) -> float:
        if not mask.any():
            return 0.0
        lam = 0.5
        a, b = ps[mask], pc[mask]
        for _ in range(iters):
            post = lam * b / np.maximum((1 - lam) * a + lam * b, 1e-300)
            lam = float(post.mean())
        return min(lam, 0.999)

    shared = em(match >= 0)
    weights = [0.0]  # no match: nothing to mix
    for length in range(order):
        mask = match == length
        weights.append(em(mask) if mask.sum() >= MIN_BUCKET else shared)
    return tuple(weights)


class StreamCache:
    """The cache for generation: one stream's text so far, as counts of what followed each
    context of up to order-1 characters. `distribution` gives (p_cache (V,), match length)."""

    def __init__(self, order: int, vocab_size: int, reset_ids: Sequence[int] = ()) -> None:
        self.order, self.v, self.reset = order, vocab_size, set(reset_ids)
        self.history: list[int] = []
        self.follow: dict[tuple[int, ...], Counter] = {}
        self.started = False  # the very first character follows nothing: it is not counted
        self.last = -1

    def add(self, i: int) -> None:
        h = self.history
        if self.started:
            for length in range(min(self.order, len(h) + 1)):
                ctx = tuple(h[len(h) - length :])
                self.follow.setdefault(ctx, Counter())[i] += 1
        h.append(i)
        if i in self.reset and self.last in self.reset:  # a blank line: the next one is new
            h.clear()
            self.follow.clear()
        self.started, self.last = True, i

    def distribution(self) -> tuple[np.ndarray | None, int]:
        h = self.history
        for length in range(min(self.order - 1, len(h)), -1, -1):
            counts = self.follow.get(tuple(h[len(h) - length :]))
            if counts:
                p = np.zeros(self.v)
                total = sum(counts.values())
                for i, c in counts.items():
                    p[i] = c / total
                return p, length
        return None, -1


def adapt_logprobs(
    static_logp: torch.Tensor, caches: list[StreamCache], adaptation: Adaptation
) -> torch.Tensor:
    """(B, V) static ln p of the next character -> (B, V) adapted ln p, per stream, with the
    weights at GENERATION_STRENGTH."""
    rows = []
    for b, cache in enumerate(caches):
        p_cache, length = cache.distribution()
        lam = adaptation.weights[length + 1] * GENERATION_STRENGTH
        if p_cache is None or lam == 0:
            rows.append(static_logp[b].double())
            continue
        rows.append(_mix(static_logp[b].double(), torch.from_numpy(p_cache), torch.tensor(lam)))
    return torch.stack(rows).to(static_logp.dtype)


class LineGuard:
    """Generation with a cache can fall into a loop (the same line, or the same two lines, or
    哈 forever): no block of 1 to `max_block` lines may come more than `k` times in a row, no
    line more than MAX_IN_WINDOW times among WINDOW_LINES, and no unit of 1 to MAX_UNIT_CHARS
    characters may repeat past MAX_RUN_CHARS characters in a line. When ending the line being
    written would break a line rule, its line break is forbidden, so the line has to become a
    different one (blank lines are exempt from the window rule: they separate stanzas); the
    character that would stretch a run is forbidden likewise. And one character earlier, the
    character that would complete a forbidden line is forbidden: a line heading for a repeat
    turns at its last character (我爱你 -> 我爱他), where the break can still come. Forbidding
    only the break let the model, which wanted the break there, go on with a tail it had no
    plan for: 6.8 % of generated Jay Chou lines were a line the song already had twice plus a
    tail, 2.4 % now (benchmarks/line_guard.py)."""

    def __init__(
        self, n: int, newline_id: int, k: int = MAX_REPEATS, max_block: int = MAX_BLOCK_LINES
    ) -> None:
        self.nl, self.k, self.max_block = newline_id, k, max_block
        self.current: list[list[int]] = [[] for _ in range(n)]
        self.previous: list[list[tuple[int, ...]]] = [[] for _ in range(n)]  # newest last

    def add(self, b: int, i: int) -> None:
        if i == self.nl:
            keep = max((self.k + 1) * self.max_block, WINDOW_LINES)
            self.previous[b] = [*self.previous[b], tuple(self.current[b])][-keep:]
            self.current[b] = []
        else:
            self.current[b].append(i)

    def _would_repeat(self, b: int, line: tuple[int, ...] | None = None) -> bool:
        """Whether ending `line` (the current one by default) here breaks a line rule."""
        line = tuple(self.current[b]) if line is None else line
        window = self.previous[b][-(WINDOW_LINES - 1) :]
        if line and sum(p == line for p in window) >= MAX_IN_WINDOW:
            return True
        lines = [*self.previous[b], line]
        for m in range(1, self.max_block + 1):
            span = (self.k + 1) * m
            if len(lines) < span:
                break
            tail = lines[-span:]
            if all(tail[j] == tail[j % m] for j in range(m, span)):
                return True
        return False

    def _run_breakers(self, b: int) -> set[int]:
        """Characters that would stretch a repeated unit past MAX_RUN_CHARS in this line."""
        line = self.current[b]
        if len(line) < MAX_RUN_CHARS:
            return set()
        tail = line[-MAX_RUN_CHARS:]
        return {
            tail[-m]
            for m in range(1, MAX_UNIT_CHARS + 1)
            if all(tail[i] == tail[i - m] for i in range(m, MAX_RUN_CHARS))
        }

    def _repeat_completers(self, b: int) -> set[int]:
        """Characters that would make the current line a whole earlier line whose ending
        would break a line rule (the lines kept are few: this is cheap)."""
        cur = tuple(self.current[b])
        n = len(cur) + 1
        ends = {p[-1] for p in set(self.previous[b]) if len(p) == n and p[:-1] == cur}
        return {i for i in ends if self._would_repeat(b, (*cur, i))}

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, V) -> (B, V), at -inf: the line break where it would complete a repeat too many,
        the character that would make the line such a repeat, and any character that would
        stretch a repeated unit too far. A row is never left with nothing to write."""
        for b in range(len(self.current)):
            if self._would_repeat(b):
                logits[b, self.nl] = float("-inf")
            bad = self._run_breakers(b) | self._repeat_completers(b)
            if bad and torch.isfinite(logits[b]).sum() > len(bad):
                logits[b, list(bad)] = float("-inf")
        return logits
