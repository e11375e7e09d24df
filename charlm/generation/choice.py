"""Best of N lines: each sample writes N candidate lines side by side (one batch), and at the
line break keeps the one its model finds likeliest; every candidate then continues from it.

A form's hard slots (a line that must end at its length, on a rhyme) cost the most where a
line ends: masked one character at a time, a line that was going elsewhere is cut short or
bent onto a rhyme. Drawing N lines and keeping the most probable (under the distribution
that ships: network, count model and song cache, before the form's masks) picks the line
that arrived at its ending naturally. Lines are written out once chosen, so a song streams
line by line. With N = 1 nothing is buffered and every character streams as it comes.
"""

from __future__ import annotations

from typing import Any

import torch


class LineChoice:
    """Rows are sample-major: rows b*N .. b*N+N-1 are sample b's candidates."""

    def __init__(self, samples: int, candidates: int) -> None:
        self.n, self.k = samples, candidates
        self.score = torch.zeros(samples * candidates, dtype=torch.float64)  # (R,)
        self.pending = [""] * (samples * candidates)

    @property
    def rows(self) -> int:
        return self.n * self.k

    def add(
        self, logp: torch.Tensor | None, ids: torch.Tensor, pieces: list[str]
    ) -> tuple[list[str], torch.Tensor | None]:
        """One step: logp (R, V) the shipped log-probs it was drawn from (None: N = 1), ids
        (R,), the rows' text pieces. Returns one piece per sample, and at a line break the
        (R,) index of the row each row continues from (None otherwise)."""
        if self.k == 1:
            return pieces, None
        self.score += logp.double().gather(1, ids[:, None].to(logp.device)).squeeze(1).cpu()
        self.pending = [p + q for p, q in zip(self.pending, pieces, strict=True)]
        if not any(p.endswith("\n") for p in pieces) and not all(p == "" for p in pieces):
            return [""] * self.n, None
        best = self.score.view(self.n, self.k).argmax(dim=1)  # (n,) the kept candidate
        keep = best + torch.arange(self.n) * self.k  # (n,) their rows
        out = [self.pending[int(r)] for r in keep]
        self.score.zero_()
        self.pending = [""] * self.rows
        return out, keep.repeat_interleave(self.k)  # (R,)


def follow(
    index: torch.Tensor, last: torch.Tensor, state: list, parts: list[Any]
) -> tuple[torch.Tensor, list]:
    """Every row continues from the row `index` (R,) names: its next logits (R, V), its
    recurrent state (per layer, (R, H) tensors), and the per-row state of `parts` (the step
    context and the pipeline: each one's `reorder(rows)`)."""
    rows = index.tolist()
    for part in parts:
        part.reorder(rows)
    at = index.to(last.device)
    return last[at], [tuple(t[at] for t in s) for s in state]
