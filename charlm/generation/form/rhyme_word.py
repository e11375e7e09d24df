"""Spelling a line's rhyme word once the line must end (free_lines.RhymeLines): the candidate
words are sorted strings, and what may come next after the letters written so far is read
off the ones that start with them (a prefix tree kept as a sorted list)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Spelling:
    """A vocabulary's ids for spelling words: `ends` are what may follow a finished word (the
    line break first; a Chinese full stop too)."""

    ids: dict[str, int]
    ends: tuple[int, ...]
    size: int  # the vocabulary's

    @property
    def newline(self) -> int:
        return self.ends[0]

    def spelled_as(self, word: str) -> str:
        """How a rhyme word is written inside a line: in lower case, "I" aside."""
        return "I" if word == "i" and "I" in self.ids else word

    def weigh(
        self, words: list[str], logp: torch.Tensor, rest: Callable[[list[list[int]]], torch.Tensor]
    ) -> np.ndarray:
        """(W,) the log-probability of each word with the line break after it: its first
        letter's from `logp` (V,), the rest from `rest` (the network, one batched pass)."""
        seqs = [[self.ids[c] for c in self.spelled_as(w)] + [self.newline] for w in words]
        first = logp[[q[0] for q in seqs]].double().cpu()  # (W,)
        return (first + rest(seqs)).numpy()

    def logits(
        self, words: list[str], scores: np.ndarray, so_far: str, row: torch.Tensor
    ) -> torch.Tensor:
        """(V,) logits of the next character of a word that starts with `so_far`: each at
        the total probability of the words it leads to (so a word is drawn as a whole, in
        proportion to its score), the ends at the finished word's, shared as the model
        shares them (`row`, (V,) its logits here). What `row` forbids stays out if it can."""
        lo, hi = _span(words, so_far)
        lp = torch.log_softmax(row.float(), dim=0)
        best: dict[int, float] = {}
        for w, sc in zip(words[lo:hi], scores[lo:hi], strict=True):
            if len(w) > len(so_far):
                nxt = [(self.ids[self.spelled_as(w)[len(so_far)]], float(sc))]
            else:
                nxt = [(i, float(sc + lp[i] - lp[self.newline])) for i in self.ends]
            for i, v in nxt:
                best[i] = float(np.logaddexp(best[i], v)) if i in best else v
        if not best:  # nothing left to spell (cannot happen): end the line
            best[self.newline] = 0.0
        out = torch.full_like(row, float("-inf"))
        out[torch.tensor(list(best))] = torch.tensor(list(best.values()), dtype=out.dtype)
        kept = out.masked_fill(~torch.isfinite(row), float("-inf"))
        return kept if torch.isfinite(kept).any() else out

    def mask(self, words: list[str], so_far: str) -> np.ndarray:
        """(V,) bool: the characters that go on a word starting with `so_far` (the ends
        after a finished one); the model's own letters choose among them."""
        lo, hi = _span(words, so_far)
        out = np.zeros(self.size, dtype=bool)
        for w in words[lo:hi]:
            if len(w) > len(so_far):
                c = self.spelled_as(w)[len(so_far)]
                if c in self.ids:
                    out[self.ids[c]] = True
            elif so_far:
                out[list(self.ends)] = True
        if not out.any():  # nothing to spell (cannot happen with a fitting prefix)
            out[self.newline] = True
        return out


def _span(words: list[str], prefix: str) -> tuple[int, int]:
    """The slice of sorted `words` that start with `prefix`."""
    return bisect.bisect_left(words, prefix), bisect.bisect_left(words, prefix + "\uffff")
