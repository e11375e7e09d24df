"""The training loss: the mean cross-entropy of next-character logits, a block of rows at a time.

`F.cross_entropy(logits.float(), y)` on a (B*T, V) batch writes the logits again in float32,
then their log-softmax, then in backward a zero-filled (B*T, V) gradient for the loss, the
log-softmax's gradient and its copy back to the logits' dtype: six passes over a tensor that
for a Chinese corpus is the biggest in the step (4,096 x 9,403 floats for the Tang poems with
batch 32 and window 128, 154 MB each). Those passes, not the matmuls, took most of the step:
with bf16 autocast the output layer and its loss took 0.45 s of a 0.53 s step (0.08 s
without them).

Here the forward keeps only the log-sum-exp of each row (N,) and the target's logit, and the
backward writes the gradient once, softmax - one_hot, in the logits' own dtype. Each block of
rows is at most BLOCK_BYTES in float32, so its temporaries stay in cache. The arithmetic is
float32 (float64 for float64 logits), as with `.float()` before: on bf16 logits the gradient
equals torch's but for one bf16 rounding step in 3 of 100,000 entries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

BLOCK_BYTES = 1 << 21  # float32 bytes of one block of rows: 55 rows of a 9.4k vocabulary


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -ln softmax(logits)[target] over rows: logits (N, V) any float dtype, targets
    (N,) int64 -> a float32 (float64 for float64 logits) scalar, differentiable in logits.
    Logits that fit in one block take torch's fused loss: they leave no traffic to save (a
    whole English batch, 4,096 x 73, is one block). So do logits on a GPU, where the fused
    kernels have the memory bandwidth and a loop of small blocks would be launches, not
    savings."""
    if logits.device.type != "cpu" or logits.numel() * 4 <= BLOCK_BYTES:
        return F.cross_entropy(logits.to(_summing(logits.dtype)), targets)
    return _BlockedCrossEntropy.apply(logits, targets)


def _summing(dtype: torch.dtype) -> torch.dtype:
    """What the loss sums in: float32, or float64 for float64 logits."""
    return torch.promote_types(dtype, torch.float32)


class _BlockedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n, v = logits.shape
        acc = _summing(logits.dtype)
        lse = torch.empty(n, dtype=acc, device=logits.device)  # (N,) ln sum_j exp(z_j)
        rows = ctx.rows = max(1, BLOCK_BYTES // (4 * v))  # rows a block
        for s in range(0, n, rows):
            lse[s : s + rows] = torch.logsumexp(logits[s : s + rows].to(acc), dim=1)
        target_logit = logits.gather(1, targets[:, None])[:, 0].to(acc)  # (N,)
        ctx.save_for_backward(logits, targets, lse)
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, targets, lse = ctx.saved_tensors
        n, rows = len(logits), ctx.rows
        grad = torch.empty_like(logits)  # (N, V), written once
        scale = grad_out.to(lse.dtype) / n
        for s in range(0, n, rows):
            p = torch.exp(logits[s : s + rows].to(lse.dtype) - lse[s : s + rows, None])  # softmax
            p[torch.arange(p.shape[0], device=p.device), targets[s : s + rows]] -= 1.0
            grad[s : s + rows] = p * scale
        return grad, None
