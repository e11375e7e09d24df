"""Interpolated Kneser-Ney character n-gram model: the count-based baseline, in arrays.

    p_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h)  +  D_k * t_k(h) / c_k(h) * p_{k-1}(w | h')

where h' drops the oldest character of h, c_N are raw counts at the highest order, c_k (k < N)
are continuation counts (how many distinct characters precede h w), t_k(h) is the number of
distinct w seen after h, and D_k = n1 / (n1 + 2 n2) from that order's count-of-counts (at least
0.1, so nothing gets probability 0). A context
never seen falls through to the next lower order. The unigram level gives the unknown symbol
the Good-Turing mass of unseen characters (characters seen once / all characters), so text with
new characters gets an honest probability rather than ~0.

The tables are sorted integer arrays, built with np.unique and read with searchsorted: no
Python loop over the text. Every k-gram has an id, its index in the sorted keys of level k:

    key_k(g) = id_{k-1}(g without its last character) * V + last character     (id_0 = 0)

so a context's followers are one contiguous slice of the next level's keys, and a context is
found by walking its characters one level at a time. The tables (keys and counts per level)
are what a checkpoint stores: loading is a read, not a rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from charlm.data.vocab import UNK_ID

MIN_DISCOUNT = 0.1


def _as_ids(ids: Any) -> np.ndarray:
    """A sequence, numpy array or CPU tensor of ids -> (N,) int64."""
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _find(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query in sorted `keys`, or -1 where it is absent."""
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, len(keys) - 1) if len(keys) else np.zeros_like(query)
    hit = (keys[pos] == query) if len(keys) else np.zeros(query.shape, dtype=bool)
    return np.where(hit, pos, -1)


class KneserNey:
    """Built from training ids (or from stored tables); `log_probs` scores a text,
    `distributions` gives the next-id probabilities after many contexts at once."""

    def __init__(self, ids: Any, vocab_size: int, order: int = 8) -> None:
        if order < 1:
            raise ValueError("order must be >= 1")
        seq = _as_ids(ids)
        n, v = len(seq), vocab_size
        keys: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]  # level 0: the empty gram
        counts: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        ctx = np.zeros(n, dtype=np.int64)  # id of the (k-1)-gram ending just before each i
        gram_prev = None  # id of the (k-1)-gram ending at each position
        for k in range(1, order + 1):
            start = k - 1  # the first position where a k-gram ends
            if start >= n:  # text shorter than k: no k-grams, so no left neighbours below
                counts[k - 1] = np.ones_like(counts[k - 1]) if k > 1 else counts[k - 1]
                keys.append(np.zeros(0, dtype=np.int64))
                counts.append(np.zeros(0, dtype=np.int64))
                continue
            uniq, first, inv = np.unique(
                ctx[start:] * v + seq[start:], return_index=True, return_inverse=True
            )
            gram = np.full(n, -1, dtype=np.int64)
            gram[start:] = inv.reshape(-1)  # id of the k-gram ending at each position
            if k > 1:
                # continuation counts of level k-1: distinct left neighbours of each (k-1)-gram
                # = distinct k-grams it ends; a (k-1)-gram seen only at the very start has none
                # and counts once
                cont = np.bincount(gram_prev[start + first], minlength=len(keys[k - 1]))
                counts[k - 1] = np.maximum(cont, 1)
            keys.append(uniq)
            counts.append(np.bincount(inv.reshape(-1), minlength=len(uniq)))  # raw counts
            ctx = np.concatenate([[-1], gram[:-1]])
            gram_prev = gram
        raw = np.bincount(seq, minlength=v) if n else np.zeros(v, dtype=np.int64)
        singles = int((raw == 1).sum())
        # Good-Turing: the chance that the next character is one never seen before.
        unk_mass = min(0.5, max(singles, 1) / max(n, 1))
        discounts = [0.0] + [_discount(c) for c in counts[1:]]
        self._set(order, v, unk_mass, np.array(discounts), keys[1:], counts[1:])

    def _set(self, order, vocab_size, unk_mass, discounts, keys, counts) -> None:
        self.order, self.vocab_size, self.unk_mass = order, vocab_size, float(unk_mass)
        self.discounts = [float(d) for d in discounts]  # [0, D_1, ..., D_order]
        self.keys = [np.zeros(1, dtype=np.int64), *keys]  # per level, sorted
        self.counts = [np.zeros(1, dtype=np.int64), *counts]  # per level, aligned with keys
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # built on first log_probs
        # An unknown character's chance is the Good-Turing estimate (unk_mass) in every
        # context; the rest is the count model over the characters it knows. Left inside the
        # lowest order, that mass backed off through every level above it: on the Jay Chou
        # lyrics it fell to 3e-4 where 2.4 % of held-out characters are new. A text that
        # holds <unk> itself (a capped vocabulary) counts it as any other character.
        first = self.keys[1][:1]
        self.open_unk = not (len(first) and first[0] == UNK_ID)  # keys sorted: UNK_ID = 0
        known = 1.0 if self.open_unk else 1 - self.unk_mass  # what the known ids share at p_0
        base = np.full(vocab_size, known / (vocab_size - 1))
        base[UNK_ID] = 0.0 if self.open_unk else self.unk_mass
        self._base = base
        self._p1 = self._extend(base[None], np.zeros(1, dtype=np.int64), 1)[0][0]

    def _level_stats(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Level k's total count and number of distinct followers for every context id. Only
        scoring whole texts needs them all; generation reads each context's slice instead,
        so loading a checkpoint does not pay for them."""
        if k not in self._stats:
            n_ctx = len(self.keys[k - 1])
            ctx = self.keys[k] // self.vocab_size
            totals = np.bincount(ctx, weights=self.counts[k], minlength=n_ctx)
            types = np.bincount(ctx, minlength=n_ctx).astype(np.float64)
            self._stats[k] = (totals, types)
        return self._stats[k]

    # ---- storage ------------------------------------------------------------------------------

    def tables(self) -> dict[str, Any]:
        """The model as plain arrays (numpy; the checkpoint stores them as tensors)."""
        return {
            "order": self.order,
            "vocab_size": self.vocab_size,
            "unk_mass": self.unk_mass,
            "discounts": np.array(self.discounts),
            "keys": self.keys[1:],
            "counts": self.counts[1:],
        }

    @classmethod
    def from_tables(cls, t: dict[str, Any]) -> KneserNey:
        """The inverse of tables(); raises ValueError on tables that do not fit together."""
        order, v = int(t["order"]), int(t["vocab_size"])
        keys = [_as_ids(k) for k in t["keys"]]
        counts = [c.numpy() if hasattr(c, "numpy") else np.asarray(c) for c in t["counts"]]
        if not 1 <= order <= 16 or len(keys) != order or len(counts) != order or v < 2:
            raise ValueError("count-model tables do not match their order")
        for k, (kk, cc) in enumerate(zip(keys, counts, strict=True), start=1):
            n_prev = 1 if k == 1 else len(keys[k - 2])
            # O(1) checks: the checkpoint digest already vouches for every byte of the tables
            if len(kk) != len(cc) or (len(kk) and (kk[0] < 0 or kk[-1] >= n_prev * v)):
                raise ValueError(f"count-model level {k} is inconsistent")
            if len(kk) > 1 and kk[0] >= kk[-1]:
                raise ValueError(f"count-model level {k} keys are not sorted")
        kn = cls.__new__(cls)
        kn._set(order, v, float(t["unk_mass"]), _as_ids_f(t["discounts"]), keys, counts)
        return kn

    # ---- contexts -----------------------------------------------------------------------------

    def _gram_ids(self, rows: np.ndarray) -> list[np.ndarray]:
        """rows (B, L) ids, right-aligned contexts (-1 = nothing) -> for j = 0..order-1, the
        id of the j-gram made of each row's last j ids, (B,), -1 where unseen.

        Level by level over every position at once: the m-gram ending at a position is the
        (m-1)-gram ending just before it, extended by its id, so a level is one lookup of
        (B, L - m + 1) keys (order - 1 lookups a call: generation asks this at every step).
        Once no row's m-gram was seen, none of their longer ones were (each holds it as its
        last m characters): the walk stops there, which spares an order-16 model most of its
        lookups."""
        b, width = rows.shape
        out = [np.zeros(b, dtype=np.int64)]
        gid = np.zeros((b, width + 1), dtype=np.int64)  # the 0-grams: (B, L + 1), all 0
        for m in range(1, self.order):
            if m > width or out[-1].max() < 0:
                out.append(np.full(b, -1, dtype=np.int64))
                continue
            c = rows[:, m - 1 :]  # (B, L - m + 1): the id each m-gram ends on
            prev = gid[:, :-1]  # the (m-1)-gram ending just before
            ok = (prev >= 0) & (c >= 0)
            query = np.where(ok, prev, 0) * self.vocab_size + np.where(ok, c, 0)
            gid = np.where(ok, _find(self.keys[m], query), -1)  # (B, L - m + 1)
            out.append(gid[:, -1])
        return out

    def _totals(self, k: int, ctx_ids: np.ndarray) -> np.ndarray:
        """Level k's total count under each context id; 0 for -1 (unseen) or no followers."""
        totals, _ = self._level_stats(k)
        if len(totals) == 0:
            return np.zeros(len(ctx_ids))
        return np.where(ctx_ids >= 0, totals[np.maximum(ctx_ids, 0)], 0.0)

    def _extend(self, p: np.ndarray, ctx_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate level k into p (B, V), row b under context ctx_ids[b] (-1 = unseen).
        Returns the new p and which rows had their context seen at this level."""
        if len(ctx_ids) == 1:  # generation asks one context a step: slices, no gathers
            return self._extend_one(p, int(ctx_ids[0]), k)
        v, d = self.vocab_size, self.discounts[k]
        keys, counts = self.keys[k], self.counts[k]
        c = np.maximum(ctx_ids, 0)
        lo, hi = np.searchsorted(keys, c * v), np.searchsorted(keys, (c + 1) * v)  # (B,) each
        seen = (ctx_ids >= 0) & (hi > lo)  # followers are one contiguous slice of the keys
        if not seen.any():
            return p, seen
        rows = np.nonzero(seen)[0]  # (S,)
        n = hi[rows] - lo[rows]  # (S,) followers of each seen context, >= 1
        first = np.cumsum(n) - n  # (S,) where each row's followers start in the flat list
        # every follower of every seen row at once (F of them): its row, its index in the keys
        row = np.repeat(rows, n)  # (F,)
        at = np.arange(int(n.sum())) - np.repeat(first, n) + np.repeat(lo[rows], n)
        follow = counts[at]
        total = np.add.reduceat(follow, first)  # (S,)
        p = p.copy()
        p[rows] *= (d * n / total)[:, None]
        p[row, keys[at] - c[row] * v] += np.maximum(follow - d, 0.0) / np.repeat(total, n)
        return p, seen

    def _extend_one(self, p: np.ndarray, ctx: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """_extend for one row (p (1, V)), with the same arithmetic in the same order: the
        same floats, in half the numpy calls (on English at order 16 most of a generated
        character's 15 levels are seen)."""
        v, d, keys = self.vocab_size, self.discounts[k], self.keys[k]
        lo, hi = (
            (int(keys.searchsorted(ctx * v)), int(keys.searchsorted((ctx + 1) * v)))
            if ctx >= 0
            else (0, 0)
        )
        if hi == lo:
            return p, np.zeros(1, dtype=bool)
        follow = self.counts[k][lo:hi]  # (n,) counts of the context's followers
        total = follow.sum()
        p = p * (d * (hi - lo) / total)
        p[0, keys[lo:hi] - ctx * v] += np.maximum(follow - d, 0.0) / total
        return p, np.ones(1, dtype=bool)

    # ---- scoring and distributions ------------------------------------------------------------

    def seen(self, grams: np.ndarray) -> np.ndarray:
        """(B, L) ids, 1 <= L <= order -> (B,) bool: each L-gram occurred in the counted text
        (generation asks it which dictionary words the corpus had)."""
        grams = np.asarray(grams, dtype=np.int64)
        gid = np.zeros(len(grams), dtype=np.int64)
        for m in range(1, grams.shape[1] + 1):
            ok = gid >= 0
            query = np.where(ok, gid, 0) * self.vocab_size + grams[:, m - 1]
            gid = np.where(ok, _find(self.keys[m], query), -1)
        return gid >= 0

    def distributions(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """(B, V) probabilities of the next id after each context (its last order-1 ids)."""
        width = self.order - 1
        rows = np.full((len(contexts), max(width, 1)), -1, dtype=np.int64)
        for b, ctx in enumerate(contexts):
            tail = list(ctx)[-width:] if width else []
            if tail:
                rows[b, -len(tail) :] = tail
        grams = self._gram_ids(rows)
        p = np.repeat(self._p1[None], len(contexts), axis=0)
        alive = np.ones(len(contexts), dtype=bool)
        for k in range(2, self.order + 1):
            p, seen = self._extend(p, np.where(alive, grams[k - 1], -1), k)
            alive &= seen  # an unseen context stops the walk up the orders
            if not alive.any():
                break
        return self._open(p)

    def _open(self, p: np.ndarray) -> np.ndarray:
        """(B, V) over the known characters -> with <unk> at unk_mass (see _set)."""
        if self.open_unk:
            p *= 1 - self.unk_mass
            p[:, UNK_ID] = self.unk_mass
        return p

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """(V,) probabilities of the next id after `context`."""
        return self.distributions([context])[0]

    def log_probs(self, ids: Any) -> np.ndarray:
        """ln p(ids[i] | ids[:i]) for i >= 1, shape (N-1,), as evaluate() scores the network;
        all positions at once, one searchsorted per order."""
        seq = _as_ids(ids)
        return self._log_probs(seq, seq[1:]) if len(seq) >= 2 else np.zeros(0)

    def log_probs_of(self, ids: Any, target: int) -> np.ndarray:
        """ln p(target | ids[:i]) for i >= 1, (N-1,): one id's chance after every context of
        the text (what a lexicon leaves to the corpus, lexicon.py, asks of a few ids)."""
        seq = _as_ids(ids)
        if len(seq) < 2:
            return np.zeros(0)
        return self._log_probs(seq, np.full(len(seq) - 1, target, dtype=np.int64))

    def _log_probs(self, seq: np.ndarray, w: np.ndarray) -> np.ndarray:
        """ln p(w[i] | seq[:i + 1]), (N-1,), seq (N,), w the targets (N-1,)."""
        n, v = len(seq), self.vocab_size
        p = self._base[w]
        alive = np.ones(n - 1, dtype=bool)
        gram = np.zeros(n, dtype=np.int64)  # id of the (k-1)-gram ending at each position
        for k in range(1, self.order + 1):
            # the (k-1)-gram ending just before each target (level 1: the empty context)
            ctx = np.zeros(n - 1, dtype=np.int64) if k == 1 else gram[:-1]
            total = self._totals(k, ctx)
            alive &= total > 0
            if not alive.any():
                break  # no position has a context seen at this order, nor at any higher one
            c = np.where(alive, ctx, 0)
            hit = _find(self.keys[k], c * v + w)
            cnt = np.where(hit >= 0, self.counts[k][np.maximum(hit, 0)], 0)
            d = self.discounts[k]
            t = np.where(alive, total, 1.0)
            types = self._level_stats(k)[1][c]  # (N-1,) distinct followers
            p = np.where(alive, p * (d * types / t) + np.maximum(cnt - d, 0.0) / t, p)
            if k < self.order:  # the k-grams ending at each position, for the next order
                prev = np.concatenate([[-1], gram[:-1]]) if k > 1 else np.zeros(n, np.int64)
                ok = prev >= 0
                gram = np.where(ok, _find(self.keys[k], np.where(ok, prev, 0) * v + seq), -1)
        if self.open_unk:  # see _set
            p = np.where(w == UNK_ID, self.unk_mass, p * (1 - self.unk_mass))
        return np.log(p)

    def entropies(self, ids: Any, chunk: int = 256) -> np.ndarray:
        """The entropy (nats) of the next-id distribution before each of ids[1:], (N-1,),
        without building the (N-1, V) distributions. Interpolated, a distribution is

            p(w) = B_1 q(w) + sum_{k=2..K} B_k max(c_k(h w) - D_k, 0) / c_k(h)

        with q the fixed unigram level (_p1), K the longest context seen and B_k the product
        of the backoff weights above level k: dense only through q, so the sum of p ln p
        is q's precomputed one, corrected at the few ids that follow the context (W):
        sum_{w not in W} B_1 q ln(B_1 q) = B_1 (ln B_1 (1 - q(W)) + sum q ln q - sum_W q ln q).
        `chunk` positions at a time: a one-character context on the Tang poems has up to
        thousands of followers, and 4,096 positions at once held 481 MB where 256 hold 29 MB,
        at the same speed (about 0.2 ms a character there, 0.01 ms on English).
        """
        seq, out = _as_ids(ids), [np.zeros(0)]
        for i in range(0, max(len(seq) - 1, 0), chunk):  # targets i+1..i+chunk, a chunk a time
            start = max(0, i - self.order + 1)  # with the ids before them as context
            out.append(self._entropies(seq[start : i + chunk + 1])[i - start :])
        return np.concatenate(out)

    def _entropies(self, seq: np.ndarray) -> np.ndarray:
        n, v = len(seq) - 1, self.vocab_size  # n targets
        levels = []  # (k, rows alive at k, their context ids, backoff weight g_k) per level
        alive = np.ones(n, dtype=bool)
        gram = np.zeros(len(seq), dtype=np.int64)
        for k in range(1, self.order + 1):
            ctx = np.zeros(n, dtype=np.int64) if k == 1 else gram[:-1]
            total = self._totals(k, ctx)
            alive &= total > 0
            if not alive.any():
                break
            rows = np.nonzero(alive)[0]
            c = ctx[rows]
            g = self.discounts[k] * self._level_stats(k)[1][c] / total[rows]  # backoff weight
            levels.append((k, rows, c, g))
            if k < self.order:
                prev = np.concatenate([[-1], gram[:-1]]) if k > 1 else np.zeros(len(seq), np.int64)
                ok = prev >= 0
                gram = np.where(ok, _find(self.keys[k], np.where(ok, prev, 0) * v + seq), -1)
        # B_k: the product of g_j over the levels above k that each row reached
        weight, running = {}, np.ones(n)
        for k, rows, _, g in reversed(levels):
            weight[k] = running[rows].copy()
            running[rows] *= g
        b1 = weight[1] if levels else np.ones(n)  # level 1 (the empty context) holds every row
        pos, ids, val = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for k, rows, c, _ in levels[1:]:
            keys, counts, d = self.keys[k], self.counts[k], self.discounts[k]
            lo, hi = np.searchsorted(keys, c * v), np.searchsorted(keys, (c + 1) * v)
            m = hi - lo  # (R,) followers of each row's context
            at = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m) + np.repeat(lo, m)
            total = np.repeat(self._level_stats(k)[0][c], m)
            pos.append(np.repeat(rows, m))
            ids.append(keys[at] - np.repeat(c, m) * v)
            val.append(np.repeat(weight[k], m) * np.maximum(counts[at] - d, 0.0) / total)
        pos, ids, val = np.concatenate(pos), np.concatenate(ids), np.concatenate(val)
        pair, inv = np.unique(pos * v + ids, return_inverse=True)  # the union W of each row
        p_pair = np.bincount(inv.reshape(-1), weights=val, minlength=len(pair))
        row, w = pair // v, pair % v
        q = self._p1
        qlnq = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)  # (V,)
        p = p_pair + b1[row] * q[w]
        plnp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        sum_w = np.bincount(row, weights=plnp, minlength=n)
        q_w = np.bincount(row, weights=q[w], minlength=n)
        qlnq_w = np.bincount(row, weights=qlnq[w], minlength=n)
        rest = b1 * (np.log(b1) * (1 - q_w) + qlnq.sum() - qlnq_w)
        h = -(sum_w + rest)
        if self.open_unk:  # see _set: <unk> at unk_mass, the rest scaled by 1 - unk_mass
            m_ = self.unk_mass
            h = (1 - m_) * h - (1 - m_) * np.log1p(-m_) - m_ * np.log(m_)
        return h

    def prob(self, context: Sequence[int], w: int) -> float:
        """p(w | context): one entry of distribution(context)."""
        return float(self.distribution(context)[w])


def _as_ids_f(x: Any) -> np.ndarray:
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def _discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2), at least MIN_DISCOUNT: a level without singletons (a text of
    repeated lines) would otherwise give D = 0, and characters unseen after a context p = 0."""
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return max(n1 / (n1 + 2 * n2), MIN_DISCOUNT) if n1 + n2 else 0.5
