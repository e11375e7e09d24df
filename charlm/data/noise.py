"""Unknown-symbol noise: characters seen once in training stand in for the ones the model will
meet only at test time, so <unk> gets an honest, learned probability.

Each epoch draws, once per once-seen *position* of the training text, whether that character
is shown as <unk> (with probability --unk-prob) for the whole epoch. Deciding per position,
not per batch, keeps input and target consistent: a character that is the target at step t is
the input at step t+1, in the same window and across the consecutive sampler's batches.
"""

from __future__ import annotations

import numpy as np
import torch

from charlm.data.vocab import UNK_ID, chunk_spans


class UnknownNoise:
    """Rewrites the once-seen positions of `ids` (N,) in place each epoch; `with noise:`
    puts the original characters back on the way out, whatever happens."""

    def __init__(self, ids: torch.Tensor, vocab_size: int, prob: float) -> None:
        # numpy view of the same memory: torch cannot write uint16 by index, numpy can, and
        # going a chunk at a time keeps a 100M-character text from needing int64 copies
        self.ids, self.prob = ids.numpy(), prob
        spans = list(chunk_spans(0, len(ids)))
        counts = np.zeros(vocab_size, dtype=np.int64)
        for i, j in spans:
            counts += np.bincount(self.ids[i:j], minlength=vocab_size)
        rare = counts == 1  # (V,) bool
        # A once-seen character occurs at exactly one position: at most V of them.
        found = [np.flatnonzero(rare[self.ids[i:j]]) + i for i, j in spans]
        self.positions = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)  # (R,)
        self.originals = self.ids[self.positions].copy()  # (R,)

    def draw_epoch(self, generator: torch.Generator) -> None:
        """Restore last epoch's positions, then hide each once-seen one with chance `prob`."""
        self.restore()
        if self.prob == 0 or len(self.positions) == 0:
            return
        hide = torch.rand(len(self.positions), generator=generator) < self.prob  # (R,)
        self.ids[self.positions[hide.numpy()]] = UNK_ID

    def restore(self) -> None:
        self.ids[self.positions] = self.originals

    def __enter__(self) -> UnknownNoise:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
