"""The recurrent state, one representation everywhere in charlm: a tuple of (L, B, H)
tensors, `(h,)` for an RNN or GRU and `(h, c)` for an LSTM (model, scratch cells, stepper,
checkpoints). Only `CharRNN._recurrence` converts to the form torch's modules take."""

from __future__ import annotations

import torch

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, B, H)


def state_size(cell: str) -> int:
    """How many tensors a cell's state holds: 2 for an LSTM (h, c), else 1 (h)."""
    return 2 if cell == "lstm" else 1


def zero_state(cell: str, layers: int, batch: int, hidden: int, like: torch.Tensor) -> State:
    """The all-zero initial state, on `like`'s device and dtype."""
    return tuple(like.new_zeros(layers, batch, hidden) for _ in range(state_size(cell)))


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a batch boundary (truncated BPTT): the values carry on, the gradient
    does not, otherwise backward would run through every batch since the epoch began."""
    return None if state is None else tuple(s.detach() for s in state)
