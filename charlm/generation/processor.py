"""What every rewrite of the next-character scores shares: the step's context and the
processor interface.

A processor is `(B, V) scores, StepContext -> (B, V) scores` (the way transformers'
LogitsProcessor works). The mixture, the song cache, the guards, the form, the acrostic heads
and the sampling filters (temperature, top-k, top-p) are all processors, applied in order by
`pipeline.Pipeline`. A processor keeping per-row state says how rows are reordered (best of N
lines: every candidate goes on from the kept one) in `reorder(rows)`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from charlm.data.vocab import UNK_ID, Vocab


class Ahead(Protocol):
    """The network a step past candidates, from this step's state (lookahead.LookaheadView)."""

    def mass(self, cands: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """cands (B, K), allowed (B, V) bool -> (B, K) log-prob that the next one is allowed."""
        ...

    def rows(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """rows (P,), ids (P,) -> (P, V) log-probs after writing ids[p] on row rows[p]."""
        ...

    def sequences(self, row: int, seqs: list[list[int]]) -> torch.Tensor:
        """(W,) log-probs of each id sequence after its first id, from row `row`."""
        ...


@dataclass
class StepContext:
    """What a processor reads at a step: each row's recent ids, its current line, lines and line
    length so far, whether it is done (--lines reached), and `ahead`, the look one step past
    candidates from this step's network state (None before the first step)."""

    history: list[list[int]]  # per row, the last `keep` ids (prefix included)
    line: list[list[int]]  # per row, the ids of its current line (prefix included)
    lines: list[int]  # line breaks written, prefix included
    line_len: list[int]  # characters in the current (last) line
    max_lines: int  # 0 = no limit
    keep: int = 1
    steps: int = 0  # characters generated after the prefix
    done: list[bool] = field(default_factory=list)
    ahead: Ahead | None = None
    spell: str | None = None  # how to write an <unk> a rule forced at this step (a symbol)

    @classmethod
    def start(cls, prefix: str, start: list[int], n: int, max_lines: int, keep: int) -> StepContext:
        lines = [prefix.count("\n")] * n
        tail = len(prefix.rsplit("\n", 1)[-1])  # the prefix's last line
        return cls(
            history=[list(start[-keep:]) for _ in range(n)],
            line=[list(start[len(start) - tail :]) if tail else [] for _ in range(n)],
            lines=lines,
            line_len=[tail] * n,
            max_lines=max_lines,
            keep=keep,
            done=[max_lines > 0 and c >= max_lines for c in lines],
        )

    @property
    def finished(self) -> bool:
        return all(self.done)

    def last_ids(self) -> list[int]:
        return [tail[-1] for tail in self.history]

    def add(self, ids: list[int], vocab: Vocab) -> list[str]:
        """Append one id per row; the text pieces to write ("" for a finished row)."""
        self.steps += 1
        out = []
        for b, i in enumerate(ids):
            tail = self.history[b]
            tail.append(i)
            del tail[: -self.keep]
            if vocab.tokens[i] == "\n":
                self.line[b] = []
            else:
                self.line[b].append(i)
            if self.done[b]:
                out.append("")
                continue
            ch = self.spell if i == UNK_ID and self.spell else vocab.tokens[i]
            out.append(ch)
            self.line_len[b] = 0 if ch == "\n" else self.line_len[b] + 1
            if ch == "\n":
                self.lines[b] += 1
                self.done[b] = self.max_lines > 0 and self.lines[b] >= self.max_lines
        self.spell = None
        return out

    def reorder(self, rows: list[int]) -> None:
        take_rows(self, ("history", "line", "lines", "line_len", "done"), rows)


class Processor:
    """A rewrite of the next-character scores: (B, V) -> (B, V), reading the StepContext."""

    looks_back = 0  # how many of each row's last ids it reads (the context keeps the most)

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError

    def reorder(self, rows: list[int]) -> None:
        """Row r goes on as row rows[r] was (best of N lines): per-row state copied. None here."""


def take_rows(obj: Any, names: tuple[str, ...], rows: list[int]) -> None:
    """obj.<name>[i] for each i in rows, for each name: the first row to take an entry takes it
    as it is (the old list is dropped), the others a deep copy, so no two rows share one."""
    for name in names:
        value, taken, out = getattr(obj, name), set(), []
        for i in rows:
            out.append(copy.deepcopy(value[i]) if i in taken else value[i])
            taken.add(i)
        setattr(obj, name, out)
