"""Dynamic evaluation: the network keeps learning from the text it has already scored.

A song's own words are the best evidence of its next ones; the song cache (adapt.py) counts
them, dynamic evaluation (Krause et al. 2018) trains on them. In text order, one stream:

    for each segment of SEGMENT characters:
        score it                 log p(w_i | w_<i) with the state carried from the segment before
        one step on its loss     theta <- theta - lr * grad / (rms + EPS), then a pull back
                                 toward the shipped weights, each weight in proportion to its
                                 rms: theta <- theta + PULL * rms / mean(rms) * (theta_0 - theta)

rms is each weight's gradient scale (the root mean square of its gradient over segments of the
training text, read as above without learning; Krause et al. 2018's "RMS" rule): a weight the
training text moves little (a rare character's embedding) takes steps its own size, and the
weights the text moves most are held to the shipped ones most firmly. Measured against the plain
SGD step (theta -= lr * grad, PULL uniform), each rule at its best rate on the same networks,
adapted figures (gate, cache and dynamic; benchmarks/dynamic_rule.py): the Jay Chou lyrics
21.04 -> 20.76 (dynamic evaluation alone 104.2 -> 73.8), the Tang poems' first 2M characters
103.27 -> 100.93, an English text of 1.1M characters 2.42 -> 2.40. Checkpoints fitted before
it (no rms stored) keep the SGD step.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from charlm.models.state import detach_state
from charlm.scoring.adapt import Adaptation
from charlm.scoring.evaluate import EvalStopped
from charlm.scoring.gate import entropy as entropy_of

# characters scored between two updates: on the Jay Chou lyrics (a 300-step model), 16 took
# the held-out mixture from 165 to 97 at the best rate, 32 to 111
SEGMENT = 16
PULL = 0.01  # per update, the share of the way back to the shipped weights (on average)
# RMS-rule rates the fit tries after 0 (the static network), the likeliest first: a fit the
# time budget cuts short keeps the best it tried (one cut inside its read: see MIN_FIT_CHARS).
# Best measured: Jay Chou 0.001, the English text and the Tang poems (600 s) 0.003, the
# Tang poems' 150 s network 0.01.
RATES = (0.003, 0.001, 0.01)
CLIP = 1.0  # the update's gradient norm at most this, as in training: a big rate cannot diverge
EPS = 1e-4  # added to rms: a weight the training text never moved takes bounded steps
SCALE_CHARS = 3_200  # training text whose gradients give rms (200 segments; ~5 s for 3 x 512)
FIT_CHARS = 8_000  # tune characters each candidate rate scores: the fit is a backward pass each
# A candidate the time budget cuts short is still compared, on the characters it scored, with
# the best before it on the same characters, if it scored at least this many: on the Tang
# poems' first 2M characters LSTM 1x384 scores 8k in 7.2 s with updates (1.6 s without), and
# the 18 s the fits had at --max-time 600 (then 3 %) ended inside the first rate tried.
MIN_FIT_CHARS = 1_000
# Where the scored text continues the training text (the held-out split), the learning network
# first reads the end of the training text, as much of it as the networks never trained on
# (the tune slice, which fits the mixture; the nearest text to the held-out songs), at most this
# many characters (a backward pass each segment). On the Jay Chou lyrics the adapted held-out
# figure went 20.55 -> 20.35 reading the tune slice (2,921 characters), 20.43 reading 4,000
# characters and 20.40 reading 10,000 (the part the networks trained on helps less).
WARM_CHARS = 4_000


@dataclass(frozen=True)
class Dynamic:
    """A fitted dynamic evaluation: the rate, the mixture weight fitted over the network as it
    adapts (an adapted network deserves more of the mixture than the static one), and each
    weight's gradient scale for the RMS rule (empty: the SGD step of older checkpoints). The
    song cache on top keeps the shipped weights, or `cache`: its weights refitted over the
    dynamic mixture, where the fit read the whole tune slice the shipped ones were fitted on
    (MixtureFit.fit_dynamic). `warm`: how many characters at the end of the training text the
    networks never trained on (the tune slice, at most WARM_CHARS), which the learning network
    reads first where the scored text continues the training text."""

    lr: float
    weight: float
    # one tensor per model.parameters(), the same shapes (see grad_scale)
    rms: tuple[torch.Tensor, ...] = field(default=(), compare=False, repr=False)
    cache: Adaptation | None = field(default=None, compare=False)
    warm: int = 0

    def to_payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lr": self.lr, "weight": self.weight}
        if self.warm:
            d["warm"] = self.warm
        if self.cache is not None:
            d["adapt"] = self.cache.to_payload()
        if self.rms:  # bf16: half the bytes, fp32's range (a scale is no finer than a guess)
            d.update(rule="rms", rms=[r.detach().cpu().to(torch.bfloat16) for r in self.rms])
        return d

    @classmethod
    def from_payload(cls, d: Any) -> Dynamic:
        """The block a checkpoint stores; ValueError/TypeError/KeyError when it is malformed."""
        if not isinstance(d, dict):
            raise TypeError("kn.dynamic is not a mapping")
        lr, weight = float(d["lr"]), float(d["weight"])
        if not (0.0 <= lr < 10.0 and 0.0 <= weight <= 1.0):
            raise ValueError("kn.dynamic.lr or kn.dynamic.weight out of range")
        cache = Adaptation.from_payload(d["adapt"]) if d.get("adapt") is not None else None
        warm = d.get("warm", 0)
        if not isinstance(warm, int) or isinstance(warm, bool) or not 0 <= warm <= WARM_CHARS:
            raise ValueError(f"kn.dynamic.warm must be a whole number in [0, {WARM_CHARS}]")
        rule = d.get("rule", "sgd")
        if rule not in ("sgd", "rms"):
            raise ValueError(f"kn.dynamic.rule {rule!r} is neither sgd nor rms")
        if rule == "sgd":
            return cls(lr, weight, cache=cache, warm=warm)
        rms = d["rms"]
        if not isinstance(rms, list | tuple) or not rms:
            raise TypeError("kn.dynamic.rms is not a list of tensors")
        out = []
        for r in rms:
            if not isinstance(r, torch.Tensor):
                raise TypeError("kn.dynamic.rms is not a list of tensors")
            r = r.float()
            if not bool(torch.isfinite(r).all()) or bool((r < 0).any()):
                raise ValueError("kn.dynamic.rms holds a negative or non-finite scale")
            out.append(r)
        return cls(lr, weight, tuple(out), cache, warm)

    def check_fits(self, model: torch.nn.Module) -> None:
        """ValueError unless rms has one tensor of each parameter's shape, in order."""
        if not self.rms:
            return
        shapes = [tuple(p.shape) for p in model.parameters()]
        if [tuple(r.shape) for r in self.rms] != shapes:
            raise ValueError("kn.dynamic.rms does not match the network's weights")


def grad_scale(
    model: torch.nn.Module,
    ids: torch.Tensor,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Each weight's gradient scale on ids (N,): the root mean square, over its segments read
    in order as dynamic evaluation reads them (state carried, no dropout, no learning), of the
    segment loss's gradient; one tensor per model.parameters(), on the CPU. `stop()` true
    raises EvalStopped."""
    reader = _Reader(model, ids, device)
    sq = [torch.zeros_like(p) for p in reader.params]
    segments = 0
    for s in range(0, reader.n, SEGMENT):
        if stop is not None and stop():
            raise EvalStopped
        _, _, grads = reader.segment(s, grads=True)
        for acc, g in zip(sq, grads, strict=True):
            if g is not None:
                acc.add_(g * g)
        segments += 1
    return tuple((acc / max(segments, 1)).sqrt().cpu() for acc in sq)


def dynamic_logprobs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
    rms: Sequence[torch.Tensor] = (),
) -> torch.Tensor:
    """ln p(ids[i] | ids[:i]) for i = 1..N-1, (N-1,) float64, the network learning as it reads
    (on a copy: `model` is untouched), by the RMS rule with `rms` (grad_scale), else by the
    SGD step. lr 0 scores the static network the same way."""
    return _read(model, ids, lr, device, stop, rms=rms)[0]


def dynamic_logprobs_and_entropy(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
    partial: bool = False,
    rms: Sequence[torch.Tensor] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """dynamic_logprobs, and the entropy (nats) of each distribution the learning network
    gave, (N-1,) each: what the mixture's gate reads (gate.py). With `partial`, `stop()` true
    ends the read instead of raising: the positions scored so far, (n,) each, n <= N-1 (whole
    segments)."""
    logp, _, ent = _read(model, ids, lr, device, stop, entropy=True, partial=partial, rms=rms)
    return logp, ent


def learned(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str = "cpu",
    rms: Sequence[torch.Tensor] = (),
) -> torch.nn.Module:
    """A copy of `model` that has read ids (N,) as dynamic evaluation reads them: what
    `generate --adapt` writes from after a prefix of whole segments (the user's text; never
    its own output, which it would only learn to repeat)."""
    return _read(model, ids, lr, device, None, rms=rms)[1].requires_grad_(False)


def _read(
    model: torch.nn.Module,
    ids: torch.Tensor,
    lr: float,
    device: torch.device | str,
    stop: Callable[[], bool] | None,
    entropy: bool = False,
    partial: bool = False,
    rms: Sequence[torch.Tensor] = (),
) -> tuple[torch.Tensor, torch.nn.Module, torch.Tensor | None]:
    """The log-probs of ids[1:] (N-1,), the network after the last update, and with
    `entropy` each distribution's entropy (N-1,). `stop()` true raises EvalStopped, or with
    `partial` ends the read: then the first s positions (s a multiple of SEGMENT)."""
    reader = _Reader(model, ids, device)
    shipped = [p.detach().clone() for p in reader.params]
    step = _RmsStep.of(rms, device) if rms else None
    n = reader.n
    out = torch.zeros(n, dtype=torch.float64)
    ent = torch.zeros(n, dtype=torch.float64) if entropy else None
    for s in range(0, n, SEGMENT):
        if stop is not None and stop():
            if partial:
                return out[:s], reader.net, None if ent is None else ent[:s]
            raise EvalStopped
        full, lp, grads = reader.segment(s, grads=lr > 0)  # (t, V), (t,)
        out[s : s + SEGMENT] = lp.double().cpu()
        if ent is not None:
            ent[s : s + SEGMENT] = entropy_of(full).double().cpu()
        if lr > 0:
            _update(reader.params, grads, shipped, lr, step)
    return out, reader.net, ent


class _Reader:
    """A copy of `model` reading ids (N,) a segment at a time in text order, its state carried
    from one segment to the next (detached: each segment's gradient is its own). No dropout:
    what it learns follows the text, not noise."""

    def __init__(self, model: torch.nn.Module, ids: torch.Tensor, device: torch.device | str):
        self.net = copy.deepcopy(model).to(device)
        self.net.eval().requires_grad_(True)
        self.params = list(self.net.parameters())
        self.n = max(len(ids) - 1, 0)  # targets
        self.x = ids[:-1].long().view(1, -1).to(device)  # (1, N-1)
        self.y = ids[1:].long().view(1, -1).to(device)  # (1, N-1)
        self.state = None

    def segment(
        self, s: int, grads: bool
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, ...] | None]:
        """Targets s .. s+SEGMENT-1 (t of them): the log-probs of every character (t, V) and of
        the targets (t,), both detached, and with `grads` the gradient of their mean loss,
        one per param (None where a weight took no part)."""
        with torch.enable_grad():
            logits, state = self.net(self.x[:, s : s + SEGMENT], self.state)  # (1, t, V)
            full = torch.log_softmax(logits.float(), dim=-1)  # (1, t, V)
            lp = full.gather(-1, self.y[:, s : s + SEGMENT, None])  # (1, t, 1)
            g = torch.autograd.grad(-lp.mean(), self.params, allow_unused=True) if grads else None
        self.state = detach_state(state)
        return full[0].detach(), lp[0, :, 0].detach(), g


@dataclass(frozen=True)
class _RmsStep:
    """The RMS rule's divisors (rms + EPS) and pulls (PULL * rms / mean rms, at most 1), one
    tensor per weight tensor, on the reading device."""

    divisors: list[torch.Tensor]
    pulls: list[torch.Tensor]

    @classmethod
    def of(cls, rms: Sequence[torch.Tensor], device: torch.device | str) -> _RmsStep:
        mean = max(float(torch.cat([r.flatten() for r in rms]).mean()), 1e-12)
        return cls([r.to(device) + EPS for r in rms],
                   [torch.clamp(PULL * r.to(device) / mean, max=1.0) for r in rms])  # fmt: skip


def _update(
    params: list,
    grads: tuple,
    shipped: list,
    lr: float,
    step: _RmsStep | None = None,
) -> None:
    """One step: the gradient's norm clipped to CLIP, then theta -= lr * grad (SGD, `step`
    None) or lr * grad / divisor (RMS), then PULL (or each weight's pull) of the way back."""
    with torch.no_grad():
        found = [g for g in grads if g is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in found])))  # fmt: skip
        scale = lr * min(1.0, CLIP / max(norm, 1e-12))
        for i, (p, g, p0) in enumerate(zip(params, grads, shipped, strict=True)):
            if g is not None and math.isfinite(norm):
                p.sub_(scale * g if step is None else scale * g / step.divisors[i])
            p.add_((PULL if step is None else step.pulls[i]) * (p0 - p))
