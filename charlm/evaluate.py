"""Deterministic full pass over a text: loss, perplexity, bits per character.

Every character after the first is predicted exactly once, with the state carried through
its stream, and the loss is averaged over characters (not over batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charlm.model import CharRNN, detach_state
from charlm.vocab import UNK_ID

IGNORE = -100


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean negative log-likelihood per character, nats
    chars: int  # characters predicted
    unknown_chars: int  # of which the target was the unknown symbol

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf

    @property
    def bits_per_char(self) -> float:
        return self.loss / math.log(2)

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_char": self.bits_per_char,
            "chars": self.chars,
            "unknown_chars": self.unknown_chars,
        }


def default_streams(n: int) -> int:
    """Parallel streams for a text of n ids: long enough streams that the zero initial state
    costs little, many of them on big texts for speed."""
    return max(1, min(64, n // 4096))


@torch.inference_mode()
def evaluate(
    model: CharRNN,
    ids: torch.Tensor,
    device: torch.device | str = "cpu",
    streams: int | None = None,
    chunk: int = 256,
) -> EvalResult:
    """Mean loss of predicting ids[1:] from ids[:-1]. `ids` (N,) integer tensor."""
    model.eval()
    n = len(ids) - 1
    if n < 1:
        return EvalResult(loss=math.nan, chars=0, unknown_chars=0)
    b = streams or default_streams(n)
    per = -(-n // b)  # ceil: every stream gets `per` positions; the tail is padded
    x = torch.full((b * per,), 0, dtype=torch.long)
    y = torch.full((b * per,), IGNORE, dtype=torch.long)
    x[:n] = ids[:-1].long()
    y[:n] = ids[1:].long()
    x, y = x.view(b, per).to(device), y.view(b, per).to(device)  # (B, L)
    total, state = 0.0, None
    for s in range(0, per, chunk):
        logits, state = model(x[:, s : s + chunk], state)  # (B, t, V)
        state = detach_state(state)
        total += F.cross_entropy(
            logits.float().flatten(0, 1),
            y[:, s : s + chunk].flatten(),
            reduction="sum",
            ignore_index=IGNORE,
        ).item()
    unknown = int((ids[1:] == UNK_ID).sum())
    return EvalResult(loss=total / n, chars=n, unknown_chars=unknown)
