"""The encoded corpus a run trains on: what the setup hands the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from charlm.data.vocab import Vocab


@dataclass(frozen=True)
class RunData:
    """The encoded corpus a run trains on, and what identifies it."""

    vocab: Vocab
    train_ids: torch.Tensor  # (N_train,) uint16/uint32 (vocab.dtype), maybe memory-mapped
    val_ids: torch.Tensor  # (N_val,) same dtype; may be empty
    corpus: dict[str, Any]  # source, fingerprint, options, val_fraction: stored in checkpoints
    tune_ids: torch.Tensor | None = None  # (N_tune,) end of the training text, kept from the
    # network and from the count model that fits the mixture weight; None = no mixture
