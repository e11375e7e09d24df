"""Dynamic evaluation: the network keeps learning from the text it has already scored.

A song's own words are the best evidence of its next ones; the song cache (adapt.py) counts
them, dynamic evaluation (Krause et al. 2018) trains on them. In text order, one stream:

    for each segment of SEGMENT characters:
        score it                 log p(w_i | w_<i) with the state carried from the segment before
        one SGD step on its loss theta <- theta - lr * grad, then a pull back toward the
                                 shipped weights: theta <- theta + PULL * (theta_0 - theta)

A segment is scored before the network learns from it, so no position's probability ever used
that position's character. The rate is fitted on the tune slice (the end of the training text,
never the held-out text) by the whole adapted pipeline, the mixture weight and the song cache
refitted over the adapted network, and travels in the checkpoint; 0 means it did not help.
The pull keeps a long text (a held-out split of many poems) from drifting away from what the
corpus as a whole taught.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from charlm.models.state import detach_state
from charlm.scoring.evaluate import EvalStopped
from charlm.scoring.gate import entropy as entropy_of

# characters scored between two updates: on the Jay Chou lyrics (a 300-step model), 16 took
# the held-out mixture from 165 to 97 at the best rate, 32 to 111
SEGMENT = 16
PULL = 0.01  # per update, the share of the way back to the shipped weights
# SGD rates the fit tries after 0 (the static network), the likeliest first: a fit the time
# budget cuts short keeps the best it tried (one cut inside its read: see MIN_FIT_CHARS)
RATES = (0.1, 0.03, 0.3, 0.01)
CLIP = 1.0  # the update's gradient norm at most this, as in training: a big rate cannot diverge
FIT_CHARS = 8_000  # tune characters each candidate rate scores: the fit is a backward pass each
# A candidate the time budget cuts short is still compared, on the characters it scored, with
# the best before it on the same characters, if it scored at least this many: on the Tang
# poems' first 2M characters LSTM 1x384 scores 8k in 7.2 s with updates (1.6 s without), and
# the 18 s the fits have at --max-time 600 ended inside the first rate tried.
MIN_FIT_CHARS = 1_000


@dataclass(frozen=True)
class Dynamic:
    """A fitted dynamic evaluation: the rate, and the mixture weight fitted over the network
    as it adapts (an adapted network deserves more of the mixture than the static one). The
    song cache on top keeps the shipped weights."""

    lr: float
    weight: float

    def to_payload(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight": self.weight}

    @classmethod
    def from_payload(cls, d: Any) -> Dynamic:
        """The block a checkpoint stores; ValueError/TypeError/KeyError when it is malformed."""
        if not isinstance(d, dict):
            raise TypeError("kn.dynamic is not a mapping")
        lr, weight = float(d["lr"]), float(d["weight"])
        if not (0.0 <= lr < 10.0 and 0.0 <= weight <= 1.0):
            raise ValueError("kn.dynamic.lr or kn.dynamic.weight out of range")
        return cls(lr, weight)


def dynamic_logprobs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """ln p(ids[i] | ids[:i]) for i = 1..N-1, (N-1,) float64, the network learning as it reads
    (on a copy: `model` is untouched). lr 0 scores the static network the same way."""
    return _read(model, ids, lr, device, stop)[0]


def dynamic_logprobs_and_entropy(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
    partial: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """dynamic_logprobs, and the entropy (nats) of each distribution the learning network
    gave, (N-1,) each: what the mixture's gate reads (gate.py). With `partial`, `stop()` true
    ends the read instead of raising: the positions scored so far, (n,) each, n <= N-1 (whole
    segments)."""
    logp, _, ent = _read(model, ids, lr, device, stop, entropy=True, partial=partial)
    return logp, ent


def learned(
    model: torch.nn.Module, ids: torch.Tensor, lr: float, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """A copy of `model` that has read ids (N,) as dynamic evaluation reads them: what
    `generate --adapt` writes from after a prefix of whole segments (the user's text; never
    its own output, which it would only learn to repeat)."""
    return _read(model, ids, lr, device, None)[1].requires_grad_(False)


def _read(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str,
    stop: Callable[[], bool] | None,
    entropy: bool = False,
    partial: bool = False,
) -> tuple[torch.Tensor, torch.nn.Module, torch.Tensor | None]:
    """The log-probs of ids[1:] (N-1,), the network after the last update, and with
    `entropy` each distribution's entropy (N-1,). `stop()` true raises EvalStopped, or with
    `partial` ends the read: then the first s positions (s a multiple of SEGMENT)."""
    net = copy.deepcopy(model).to(device)
    net.eval().requires_grad_(True)  # no dropout: the updates follow the text, not noise
    params = [p for p in net.parameters() if p.requires_grad]
    shipped = [p.detach().clone() for p in params]
    n = len(ids) - 1
    out = torch.zeros(max(n, 0), dtype=torch.float64)
    ent = torch.zeros(max(n, 0), dtype=torch.float64) if entropy else None
    x = ids[:-1].long().view(1, -1).to(device)  # (1, N-1)
    y = ids[1:].long().view(1, -1).to(device)
    state = None
    for s in range(0, n, SEGMENT):
        if stop is not None and stop():
            if partial:
                return out[:s], net, None if ent is None else ent[:s]
            raise EvalStopped
        with torch.enable_grad():
            logits, new_state = net(x[:, s : s + SEGMENT], state)  # (1, t, V)
            full = torch.log_softmax(logits.float(), dim=-1)  # (1, t, V)
            lp = full.gather(-1, y[:, s : s + SEGMENT, None])
            out[s : s + SEGMENT] = lp[0, :, 0].detach().double().cpu()
            if ent is not None:
                ent[s : s + SEGMENT] = entropy_of(full[0].detach()).double().cpu()
            if lr > 0:
                grads = torch.autograd.grad(-lp.mean(), params, allow_unused=True)
        if lr > 0:
            _update(params, grads, shipped, lr)
        state = detach_state(new_state)
    return out, net, ent


def _update(params: list, grads: tuple, shipped: list, lr: float) -> None:
    """One step: theta -= lr * grad (its norm clipped to CLIP), then PULL of the way back."""
    with torch.no_grad():
        found = [g for g in grads if g is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in found])))  # fmt: skip
        scale = lr * min(1.0, CLIP / max(norm, 1e-12))
        for p, g, p0 in zip(params, grads, shipped, strict=True):
            if g is not None and math.isfinite(norm):
                p.sub_(scale * g)
            p.add_(PULL * (p0 - p))
