"""The textbook's two samplers, as pure generators of (X, Y) batches.

Both take the whole id sequence and a `torch.Generator`, and nothing else random: the same
generator state gives the same batches. `start` skips the first batches of an epoch without
changing the others, which is how --resume continues mid-epoch.

random      independent windows of seq_len at a random offset, shuffled; the hidden state is
            reset for every batch because neighbouring rows are unrelated.
consecutive the text is cut into B parallel streams; batch k holds the k-th window of each,
            so row b of batch k+1 continues row b of batch k and the state can be carried:

                ids:  a b c d e f g h i j k l m n o p q r s t u v w x     (B=2, T=3)
                stream 0: a b c d e f g h i j k      batch 0: [a b c]  batch 1: [d e f] ...
                stream 1: l m n o p q r s t u v               [l m n]           [o p q] ...
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from charlm.errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor]  # X (B, T), Y (B, T): Y is X shifted by one


def batches_per_epoch(n: int, batch_size: int, seq_len: int) -> int:
    """Batches both samplers give for `n` ids; independent of the random offset (< seq_len)."""
    usable = n - seq_len  # worst case: offset seq_len-1 and one id kept for the last target
    if usable <= 0:
        return 0
    return (usable // seq_len) // batch_size


def check_enough(n: int, batch_size: int, seq_len: int, what: str = "the training text") -> int:
    """Raise DataError naming the counts when `n` ids cannot fill one batch."""
    n_batches = batches_per_epoch(n, batch_size, seq_len)
    if n_batches < 1:
        need = batch_size * seq_len + seq_len
        raise DataError(
            f"{what} has {n:,} characters but one batch of --batch-size {batch_size} x "
            f"--seq-len {seq_len} needs {need:,}; lower --batch-size or --seq-len, or use a "
            "longer corpus"
        )
    return n_batches


def _offset(seq_len: int, generator: torch.Generator) -> int:
    return int(torch.randint(seq_len, (1,), generator=generator).item())


def random_batches(
    ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator, start: int = 0
) -> Iterator[Batch]:
    """Shuffled independent windows. `ids` (N,) any integer dtype; yields int64 (B, T) pairs."""
    n_batches = batches_per_epoch(len(ids), batch_size, seq_len)
    offset = _offset(seq_len, generator)
    n_windows = n_batches * batch_size
    perm = torch.randperm((len(ids) - seq_len) // seq_len, generator=generator)[:n_windows]
    starts = offset + perm * seq_len  # (n_batches*B,)
    steps = torch.arange(seq_len)  # (T,)
    for k in range(start, n_batches):
        idx = starts[k * batch_size : (k + 1) * batch_size, None] + steps  # (B, T)
        yield ids[idx].long(), ids[idx + 1].long()


def consecutive_batches(
    ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator, start: int = 0
) -> Iterator[Batch]:
    """B parallel streams read left to right; row b of each batch continues row b of the last."""
    n_batches = batches_per_epoch(len(ids), batch_size, seq_len)
    offset = _offset(seq_len, generator)
    # Stream b starts at offset + b*stride; stride >= n_batches*seq_len so streams never overlap.
    stride = (len(ids) - 1 - offset) // batch_size
    rows = offset + torch.arange(batch_size)[:, None] * stride  # (B, 1)
    for k in range(start, n_batches):
        idx = rows + k * seq_len + torch.arange(seq_len)  # (B, T)
        yield ids[idx].long(), ids[idx + 1].long()


def make_batches(
    sampler: str,
    ids: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    start: int = 0,
) -> Iterator[Batch]:
    fn = random_batches if sampler == "random" else consecutive_batches
    return fn(ids, batch_size, seq_len, generator, start)
