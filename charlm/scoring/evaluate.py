"""Deterministic full pass over a text: loss, perplexity, bits per character.

Every character after the first is predicted exactly once, with the state carried through
its stream, and the loss is averaged over characters (not over batches).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from charlm.data.vocab import UNK_ID
from charlm.models.charrnn import CharRNN
from charlm.models.state import detach_state
from charlm.scoring.gate import entropy as entropy_of
from charlm.system.distributed import SINGLE, Dist

CHUNK_TOKENS = 4096  # positions per forward call: a signal waits for at most one of them


class EvalStopped(Exception):
    """Raised between chunks when the caller's `stop()` says a signal has come."""


def perplexity(loss: float) -> float:
    """exp(mean loss in nats); inf where exp would overflow."""
    return math.exp(loss) if loss < 700 else math.inf


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean negative log-likelihood per character, nats
    chars: int  # characters predicted
    unknown_chars: int  # of which the target was the unknown symbol

    @classmethod
    def from_logprobs(cls, logp: torch.Tensor, targets: torch.Tensor) -> EvalResult:
        """From ln p(target) per predicted character (N-1,) and those targets (N-1,)."""
        n = len(logp)
        return cls(
            loss=float(-logp.double().mean()) if n else math.nan,
            chars=n,
            unknown_chars=int((targets == UNK_ID).sum()),
        )

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

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


def evaluate(
    model: CharRNN,
    ids: torch.Tensor,
    device: torch.device | str = "cpu",
    streams: int | None = None,
) -> EvalResult:
    """Mean loss of predicting ids[1:] from ids[:-1]. `ids` (N,) integer tensor."""
    return EvalResult.from_logprobs(target_logprobs(model, ids, device, streams), ids[1:])


def target_logprobs(
    model: CharRNN,
    ids: torch.Tensor,
    device: torch.device | str = "cpu",
    streams: int | None = None,
    stop: Callable[[], bool] | None = None,
    dist: Dist = SINGLE,
) -> torch.Tensor:
    """ln p(ids[i] | ids[:i]) for i = 1..N-1, shape (N-1,) float64, in text order. `stop()`
    is asked between chunks of about CHUNK_TOKENS positions; True raises EvalStopped. Under
    torchrun (`dist`), each process scores its share of the streams and all get the whole."""
    return _read(model, ids, device, streams, stop, dist, False)[0]


def logprobs_and_entropy(
    model: CharRNN,
    ids: torch.Tensor,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """target_logprobs, and the entropy (nats) of each of those distributions, (N-1,) each:
    what the mixture's gate reads (scoring/gate.py)."""
    logp, ent = _read(model, ids, device, None, stop, SINGLE, True)
    return logp, ent


@torch.inference_mode()
def _read(
    model: CharRNN,
    ids: torch.Tensor,
    device: torch.device | str,
    streams: int | None,
    stop: Callable[[], bool] | None,
    dist: Dist,
    entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    model.eval()
    n = len(ids) - 1
    if n < 1:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    b = streams or default_streams(n)
    per = -(-n // b)  # ceil: every stream gets `per` positions; the tail is padded
    # The last stream is padded with id 0 up to `per`; those positions are cut off at the end.
    x = torch.zeros(b * per, dtype=torch.long)
    y = torch.zeros(b * per, dtype=torch.long)
    x[:n] = ids[:-1].long()
    y[:n] = ids[1:].long()
    mine = dist.stream_rows(b)  # streams are independent: any split gives the same numbers
    x, y = x.view(b, per)[mine].to(device), y.view(b, per)[mine].to(device)  # (b', L)
    out = torch.zeros(len(x), per, dtype=torch.float64)
    ent = torch.zeros(len(x), per, dtype=torch.float64) if entropy else None
    state = None
    # (b, chunk) positions a call, short whatever b is; every process takes the same number of
    # chunks (and asks `stop` as often), even one whose share is empty
    chunk = max(16, CHUNK_TOKENS // b)
    for s in range(0, per, chunk):
        if stop is not None and stop():
            raise EvalStopped
        if not len(x):
            continue
        logits, state = model(x[:, s : s + chunk], state)  # (b', t, V)
        state = detach_state(state)
        tgt = y[:, s : s + chunk, None]  # (b', t, 1)
        full = torch.log_softmax(logits.float(), dim=-1)  # (b', t, V)
        out[:, s : s + chunk] = full.gather(-1, tgt)[..., 0].double().cpu()  # (b', t)
        if ent is not None:
            ent[:, s : s + chunk] = entropy_of(full).double().cpu()
    logp = dist.gather_rows(out, b).flatten()[:n]
    return logp, (dist.gather_rows(ent, b).flatten()[:n] if ent is not None else None)
