"""The network's share in the mixture, character by character: a gate on how sure each model is.

One weight for the whole text trusts the count model as much where it has seen a long context
a hundred times as where it is guessing, and the network as much where it knows a line ends
here as where it is unsure. The gate reads both models' uncertainty before each character:

    lam(i) = sigmoid(bias + net * H_net(i) + kn * H_kn(i))
    p(w)   = lam(i) p_net(w) + (1 - lam(i)) p_kn(w)

H_* the entropy (nats) of each model's next-character distribution: known before the
character is, so the mixture stays a distribution. Each is clamped to the range the tune slice
showed: a logistic fitted on, say, a barely trained network's near-constant entropies must not
extrapolate to the text it generates. Three numbers, fitted on the tune slice
after training (`MixtureFit.fit_gate`); measured there against the one weight, on the held-out
text (nats/char): King James Bible 1.1M -0.0087, Jay Chou -0.0071 (and -0.0072 on a 20k
slice of it), the bundled poems -0.055, where the network knows to the character where a line
ends and one weight kept giving the count model its share there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# L2 on the two slopes (per nat), per tune character: keeps a gate fitted on a few hundred
# characters near the one weight it starts from; the slopes fitted on the corpora above (0.1-1
# per nat) pay under 1e-4 nats/char for it
SLOPE_PENALTY = 1e-4
MIN_GAIN = 1e-4  # nats/char on the tune slice under which the one weight is kept
MIN_HALF = 100  # tune characters each half needs for the gate to be tried at all


@dataclass(frozen=True)
class Gate:
    bias: float
    net: float  # per nat of the network's entropy
    kn: float  # per nat of the count model's entropy
    net_range: tuple[float, float]  # the entropies the tune slice showed, each model's
    kn_range: tuple[float, float]

    def logits(self, h_net: torch.Tensor, h_kn: torch.Tensor) -> torch.Tensor:
        """The gate's logit per position, (N,) from the entropies (N,) each."""
        h_net = h_net.double().clamp(*self.net_range)
        return self.bias + self.net * h_net + self.kn * h_kn.double().clamp(*self.kn_range)

    def mix(
        self, net_logp: torch.Tensor, kn_logp: torch.Tensor, h_net: torch.Tensor, h_kn: torch.Tensor
    ) -> torch.Tensor:
        """ln p of each target (N,) under the gated mixture, in log space."""
        z = self.logits(h_net, h_kn)
        net, kn = net_logp.double(), kn_logp.double()
        return torch.logaddexp(net + F.logsigmoid(z), kn + F.logsigmoid(-z))

    def to_payload(self) -> list[float]:
        return [self.bias, self.net, self.kn, *self.net_range, *self.kn_range]

    @classmethod
    def from_payload(cls, d: Any) -> Gate:
        x = [float(v) for v in d]
        if len(x) != 7 or not all(math.isfinite(v) and abs(v) < 1e3 for v in x):
            raise ValueError("kn.gate must be seven finite numbers")
        if x[3] > x[4] or x[5] > x[6]:
            raise ValueError("kn.gate ranges must run from low to high")
        return cls(x[0], x[1], x[2], (x[3], x[4]), (x[5], x[6]))


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """(..., V) log-probabilities -> (...) entropy in nats."""
    return -(logp.exp() * logp).sum(-1)


def fit_gate(
    net_logp: torch.Tensor,
    kn_logp: torch.Tensor,
    h_net: torch.Tensor,
    h_kn: torch.Tensor,
    weight: float,
) -> Gate | None:
    """The gate that maximises the likelihood of the tune slice's targets (N,) each, started
    from the one weight `weight`. It ships only where it earns its two extra numbers on text
    it was not fitted on: fitted on each half of the slice and scored on the other, against
    one weight fitted the same way, it must gain MIN_GAIN nats/char (a gate fitted on a few
    hundred characters of a barely trained network can fit noise). None where it does not."""
    n = len(net_logp)
    if n < 2 * MIN_HALF or not 0.0 < weight < 1.0:
        return None
    feats = torch.stack([h_net.double(), h_kn.double()], 1)  # (N, 2)
    data = (net_logp.double(), kn_logp.double(), feats)
    z0 = math.log(weight / (1 - weight))
    gain = 0.0
    halves = (slice(0, n // 2), slice(n // 2, n))
    for fit_on, test_on in (halves, halves[::-1]):
        part = [d[fit_on] for d in data]
        gated, one = _fit(*part, z0, slopes=True), _fit(*part, z0, slopes=False)
        test = [d[test_on] for d in data]
        gain += (_nll(one, *test) - _nll(gated, *test)) * len(test[0]) / n
    if not gain >= MIN_GAIN:
        return None
    t = _fit(*data, z0, slopes=True)
    lo, hi = feats.min(0).values, feats.max(0).values
    return Gate(float(t[0]), float(t[1]), float(t[2]), (float(lo[0]), float(hi[0])),
                (float(lo[1]), float(hi[1])))  # fmt: skip


def _nll(theta: torch.Tensor, net: torch.Tensor, kn: torch.Tensor, feats: torch.Tensor) -> float:
    """nats/char of the targets under the mixture gated by theta (bias, net, kn)."""
    with torch.no_grad():
        return float(_loss(theta, net, kn, feats))


def _loss(theta: torch.Tensor, net: torch.Tensor, kn: torch.Tensor, feats: torch.Tensor):
    z = theta[0] + feats @ theta[1:]  # (N,)
    return -torch.logaddexp(net + F.logsigmoid(z), kn + F.logsigmoid(-z)).mean()


def _fit(
    net: torch.Tensor, kn: torch.Tensor, feats: torch.Tensor, z0: float, slopes: bool
) -> torch.Tensor:
    """(bias, net, kn) maximising the likelihood, from (z0, 0, 0); slopes=False: the bias
    alone (one weight). The features are centred while fitting, so the bias moves as the mean
    logit and the slopes stay on their own; the result is in plain nats."""
    mu = feats.mean(0)
    x = feats - mu
    free = torch.tensor([z0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([1.0, float(slopes), float(slopes)], dtype=torch.float64)
    opt = torch.optim.LBFGS([free], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        theta = free * mask
        loss = _loss(theta, net, kn, x) + SLOPE_PENALTY * (theta[1:] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    t = (free * mask).detach()
    if not bool(torch.isfinite(t).all()):
        return torch.tensor([z0, 0.0, 0.0], dtype=torch.float64)
    return torch.cat([t[:1] - (t[1:] * mu).sum(), t[1:]])  # z = bias + net H_net + kn H_kn
