"""Mixing the network with the Kneser-Ney count model.

A network and a count model are wrong in different places: the network generalises across
similar contexts, the count table remembers long exact phrases. Their per-character mixture

    p(w | h) = lam * p_net(w | h) + (1 - lam) * p_kn(w | h)

beats both on small corpora. `lam` is fitted by EM on a "tune" slice cut from the end of the
training text, which neither the network nor the count model used for fitting it and which the
held-out split never sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from charlm.evaluate import EvalResult, target_logprobs
from charlm.kneser_ney import KneserNey

MAX_KN_CHARS = 5_000_000  # count tables live in Python dicts; past this the network is alone
MIN_TUNE_CHARS = 64  # fewer tune characters than this cannot fit a weight worth shipping


@dataclass(frozen=True)
class Mixture:
    kn: KneserNey
    weight: float  # lam: the network's share

    def mix(self, net_logp: torch.Tensor, kn_logp: torch.Tensor) -> torch.Tensor:
        return mix_logprobs(net_logp, kn_logp, self.weight)

    def next_logprobs(self, net_logits: torch.Tensor, contexts: list[list[int]]) -> torch.Tensor:
        """(B, V) network logits and each row's context ids -> (B, V) mixture log-probs."""
        p_net = torch.softmax(net_logits.double(), dim=-1).cpu()
        p_kn = torch.from_numpy(np.stack([self.kn.distribution(c) for c in contexts]))
        p = self.weight * p_net + (1 - self.weight) * p_kn
        return torch.log(p).to(net_logits.device)


@dataclass(frozen=True)
class Scores:
    """One text scored: what ships (the mixture when there is one) and the network alone."""

    shipped: EvalResult
    network: EvalResult
    weight: float | None  # the network's share in the mixture; None = network alone


def score_text(
    model: torch.nn.Module,
    ids: torch.Tensor,
    device: torch.device | str,
    mixture: Mixture | None = None,
    kn_logp: torch.Tensor | None = None,
) -> Scores:
    """Score ids (N,) under the network and, with a mixture, under the mixture too.
    `kn_logp` (N-1,): the count model's log-probs of these ids, when the caller has them."""
    net_logp = target_logprobs(model, ids, device)  # (N-1,)
    network = EvalResult.from_logprobs(net_logp, ids[1:])
    if mixture is None:
        return Scores(network, network, None)
    kn_logp = kn_logprobs(mixture.kn, ids) if kn_logp is None else kn_logp
    shipped = EvalResult.from_logprobs(mixture.mix(net_logp, kn_logp), ids[1:])
    return Scores(shipped, network, mixture.weight)


class MixtureFit:
    """A run's count model, and the honest way to fit its weight.

    Two count models: one counts the training text without the tune slice and scores the tune
    slice (so the weight is fitted on text neither model has seen), the other counts all of it
    and is the one that ships. `fit(model)` gives the mixture for the network as it is now.
    """

    def __init__(self, fit_ids: torch.Tensor, tune_ids: torch.Tensor, order: int, vocab: int):
        self.order = order
        self.ids = torch.cat([fit_ids, tune_ids]).to(torch.int32)  # (N_fit + N_tune,)
        self.kn = KneserNey(self.ids.tolist(), vocab, order)
        self.tune_ids = tune_ids
        self.tune_kn_logp = kn_logprobs(KneserNey(fit_ids.tolist(), vocab, order), tune_ids)

    def fit(self, model: torch.nn.Module, device: torch.device | str, weight: float | None = None):
        """The mixture with its weight fitted by EM on the tune slice (or the given weight)."""
        if weight is None:
            weight = fit_weight(target_logprobs(model, self.tune_ids, device), self.tune_kn_logp)
        return Mixture(self.kn, weight)

    def payload(self, weight: float) -> dict[str, Any]:
        return to_payload(self.ids, self.order, weight)


def mix_logprobs(net_logp: torch.Tensor, kn_logp: torch.Tensor, weight: float) -> torch.Tensor:
    if weight >= 1:
        return net_logp
    if weight <= 0:
        return kn_logp
    return torch.logaddexp(net_logp + math.log(weight), kn_logp + math.log1p(-weight))


def fit_weight(net_logp: torch.Tensor, kn_logp: torch.Tensor, iters: int = 100) -> float:
    """EM for the one mixture weight that maximises the likelihood of the tune slice."""
    if len(net_logp) == 0:
        return 1.0
    lam = 0.5
    for _ in range(iters):
        a = net_logp + math.log(lam)
        b = kn_logp + math.log1p(-lam)
        new = float(torch.exp(a - torch.logaddexp(a, b)).mean())
        new = min(max(new, 1e-4), 1 - 1e-4)
        if abs(new - lam) < 1e-7:
            lam = new
            break
        lam = new
    return lam


def kn_logprobs(kn: KneserNey, ids: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(kn.log_probs(ids.tolist()))


def to_payload(ids: torch.Tensor, order: int, weight: float) -> dict[str, Any]:
    """What a checkpoint stores: the counts are rebuilt from the ids (tensor, no pickle)."""
    return {"order": order, "ids": ids.to(torch.int32).clone(), "weight": float(weight)}


def from_payload(block: dict[str, Any] | None, vocab_size: int) -> Mixture | None:
    if not block:
        return None
    kn = KneserNey(block["ids"].tolist(), vocab_size, int(block["order"]))
    return Mixture(kn=kn, weight=float(block["weight"]))
