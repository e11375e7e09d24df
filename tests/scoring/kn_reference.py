"""The first Kneser-Ney implementation (dicts of tuples), kept as the reference that
charlm.scoring.kneser_ney (arrays) must equal on small texts. Not used by charlm itself.

Interpolated Kneser-Ney character n-gram model: the count-based baseline.

    p_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h)  +  D_k * t_k(h) / c_k(h) * p_{k-1}(w | h')

where h' drops the oldest character of h, c_N are raw counts at the highest order, c_k (k < N)
are continuation counts (how many distinct characters precede h w), t_k(h) is the number of
distinct w seen after h, and D_k = n1 / (n1 + 2 n2) from that order's count-of-counts. A context
never seen falls through to the next lower order. The unigram level gives the unknown symbol
the Good-Turing mass of unseen characters (characters seen once / all characters), so text with
new characters gets an honest probability rather than ~0. When the text never holds the
unknown symbol, that mass stays the same in every context: the model of the known characters
is scaled by 1 - unk_mass (it does not back off through the orders with the rest).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from charlm.data.vocab import UNK_ID

Context = tuple[int, ...]


class ReferenceKneserNey:
    """Built from training ids; `prob` scores one character, `distribution` gives all of them."""

    def __init__(self, ids: Sequence[int], vocab_size: int, order: int = 8) -> None:
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order, self.vocab_size = order, vocab_size
        seq = [int(i) for i in ids]
        # types[k]: set of distinct k-grams; raw counts only for the highest order.
        top: dict[Context, int] = defaultdict(int)
        types: list[set[Context]] = [set() for _ in range(order + 1)]
        for i in range(len(seq)):
            for k in range(1, order + 1):
                if i - k + 1 < 0:
                    break
                g = tuple(seq[i - k + 1 : i + 1])
                types[k].add(g)
                if k == order:
                    top[g] += 1
        counts: list[dict[Context, int]] = [dict() for _ in range(order + 1)]
        counts[order] = dict(top)
        for k in range(1, order):
            cont: dict[Context, int] = defaultdict(int)
            for g in types[k + 1]:
                cont[g[1:]] += 1  # one more distinct left neighbour of the k-gram g[1:]
            # k-grams only ever seen at the very start have no left neighbour: count them once
            for g in types[k]:
                cont.setdefault(g, 1)
            counts[k] = dict(cont)
        # Per order and context: total count, distinct followers, follower counts.
        self.tables: list[dict[Context, tuple[int, int, dict[int, int]]]] = [{}]
        self.discounts: list[float] = [0.0]
        for k in range(1, order + 1):
            table: dict[Context, list] = {}
            n1 = n2 = 0
            for g, c in counts[k].items():
                entry = table.setdefault(g[:-1], [0, 0, {}])
                entry[0] += c
                entry[1] += 1
                entry[2][g[-1]] = c
                n1 += c == 1
                n2 += c == 2
            self.tables.append({h: (e[0], e[1], e[2]) for h, e in table.items()})
            self.discounts.append(max(n1 / (n1 + 2 * n2), 0.1) if n1 + n2 else 0.5)
        raw = np.bincount(np.asarray(seq, dtype=np.int64), minlength=vocab_size)
        singles = int((raw == 1).sum())
        # Good-Turing: the chance that the next character is one never seen before.
        self.unk_mass = min(0.5, max(singles, 1) / max(len(seq), 1))
        self._p1: np.ndarray | None = None
        self.open_unk = raw[UNK_ID] == 0

    def _base(self) -> np.ndarray:
        """p_0: the unknown symbol gets unk_mass, every known id an equal share of the rest
        (with open_unk, the known ids share it all: unk_mass is added after the orders)."""
        if self.open_unk:
            p = np.full(self.vocab_size, 1 / (self.vocab_size - 1))
            p[UNK_ID] = 0.0
            return p
        p = np.full(self.vocab_size, (1 - self.unk_mass) / (self.vocab_size - 1))
        p[UNK_ID] = self.unk_mass
        return p

    def _levels(self, context: Sequence[int]):
        """(discount, total, distinct followers, follower counts) from order 1 upwards, for
        the suffixes of `context` that were seen; a longer unseen one cannot have been seen."""
        ctx = tuple(int(c) for c in context)[-(self.order - 1) :] if self.order > 1 else ()
        for k in range(1, min(self.order, len(ctx) + 1) + 1):
            entry = self.tables[k].get(ctx[len(ctx) - (k - 1) :] if k > 1 else ())
            if entry is None:
                return
            yield (self.discounts[k], *entry)

    def _unigram(self) -> np.ndarray:
        """p_1, the same for every context, built once: its loop covers the whole vocabulary."""
        if self._p1 is None:
            p = self._base()
            for d, total, n_types, followers in self._levels(()):
                p = p * (d * n_types / total)
                for w, c in followers.items():
                    p[w] += max(c - d, 0.0) / total
            self._p1 = p
        return self._p1

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """(V,) probabilities of the next id after `context` (only the last order-1 ids count)."""
        p = self._unigram().copy()
        for k, (d, total, n_types, followers) in enumerate(self._levels(context), start=1):
            if k == 1:
                continue  # already in p
            p *= d * n_types / total
            ids = np.fromiter(followers.keys(), dtype=np.int64, count=len(followers))
            cnt = np.fromiter(followers.values(), dtype=np.float64, count=len(followers))
            p[ids] += np.maximum(cnt - d, 0.0) / total
        if self.open_unk:
            p = p * (1 - self.unk_mass)
            p[UNK_ID] = self.unk_mass
        return p

    def prob(self, context: Sequence[int], w: int) -> float:
        """p(w | context), the same value as distribution(context)[w] without building it."""
        if self.open_unk and w == UNK_ID:
            return self.unk_mass
        p = float(self._base()[w])
        for d, total, n_types, followers in self._levels(context):
            p = p * (d * n_types / total) + max(followers.get(w, 0) - d, 0.0) / total
        return p * (1 - self.unk_mass) if self.open_unk else p

    def log_probs(self, ids: Sequence[int]) -> np.ndarray:
        """ln p(ids[i] | ids[:i]) for i >= 1, shape (N-1,), as evaluate() scores the network."""
        seq = [int(i) for i in ids]
        return np.array(
            [
                math.log(self.prob(seq[max(0, i - self.order + 1) : i], seq[i]))
                for i in range(1, len(seq))
            ]
        )
