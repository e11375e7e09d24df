"""A generation's processors in order: what ships (the network mixed with the count model, the
song cache), the rules that forbid (guards, form, acrostic heads), then the sampling filters
(temperature, top-k, top-p). Best of N lines scores each candidate by what ships, before the
rules mask it; so the pipeline hands that back too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from charlm.generation.processor import Processor, StepContext


@dataclass
class Pipeline:
    shipped: list[Processor]  # the distribution that ships: (B, V) logits -> log-probs
    rules: list[Processor]  # masks and reweightings of lyric form, copies and loops
    sampling: list[Processor]  # NoUnknown, Temperature, TopK, TopP (filters.sampling_filters)

    @property
    def processors(self) -> list[Processor]:
        return [*self.shipped, *self.rules, *self.sampling]

    @property
    def looks_back(self) -> int:
        """The most ids back any processor reads: what the context keeps of each row."""
        return max([1] + [p.looks_back for p in self.processors])

    def of_kind(self, kind: type) -> Processor | None:
        return next((p for p in self.rules if isinstance(p, kind)), None)

    def __call__(
        self, scores: torch.Tensor, ctx: StepContext, keep_shipped: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, V) network logits -> (B, V) scores to draw from, and with `keep_shipped` a copy
        of what ships (the rules after it mask in place)."""
        for p in self.shipped:
            scores = p(scores, ctx)
        # without a count model, the network's logits themselves (as charlm always scored them)
        shipped = (scores.clone() if self.shipped else scores) if keep_shipped else None
        for p in self.rules:
            scores = p(scores, ctx)
        for p in self.sampling:
            scores = p(scores, ctx)
        return scores, shipped

    def reorder(self, rows: list[int]) -> None:
        for p in self.processors:
            p.reorder(rows)
