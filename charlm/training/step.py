"""One optimizer step, pure: forward, loss, backward, clip, step (or none when not finite).

Used by the loop and by the sizing rule's speed measurement; imports nothing of the loop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from charlm.config import TrainConfig
from charlm.errors import ResourceError
from charlm.models.state import State, detach_state


@dataclass(frozen=True)
class StepResult:
    loss: float
    grad_norm: float
    state: State | None  # the state after the batch, detached; None when not finite
    finite: bool  # False: nothing was applied to the weights


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    state: State | None,
    *,
    lr: float,
    clip: float,
    bf16: bool,
) -> StepResult:
    """One optimizer step on a batch: x, y (B, T) ids, `state` the carried state or None.
    `model` is the CharRNN, or DistributedDataParallel over it (gradients averaged in backward).

    A non-finite loss or gradient never reaches the weights: the gradients are dropped and no
    step is taken (StepResult.finite is False)."""
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    # bf16 autocast: matmuls in bfloat16, the loss and the weights stay float32.
    with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
        loss, state = model(x, state, y)  # float32, whatever the logits' dtype
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # clip 0 = off: an infinite bound still measures the norm, and scales nothing
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf)
    loss_v, norm_v = loss.item(), norm.item()
    if not (math.isfinite(loss_v) and math.isfinite(norm_v)):
        opt.zero_grad(set_to_none=True)
        return StepResult(loss_v, norm_v, None, False)
    opt.step()
    return StepResult(loss_v, norm_v, detach_state(state), True)


@contextlib.contextmanager
def out_of_memory_as_resource_error(cfg: TrainConfig) -> Iterator[None]:
    """An allocation failure inside becomes a ResourceError naming the options to lower."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        # CPU allocation failures arrive as plain RuntimeErrors from the allocator.
        msg = str(e).lower()
        allocator = "out of memory" in msg or "can't allocate memory" in msg
        if not isinstance(e, (torch.OutOfMemoryError, MemoryError)) and not allocator:
            raise
        raise ResourceError(
            f"out of memory with --batch-size {cfg.batch_size} and --seq-len "
            f"{cfg.seq_len}; lower them or --hidden"
        ) from None
