"""Several networks of one configuration, averaged: p(w | h) = mean_k p_k(w | h).

On a small corpus one network converges long before a time budget ends and then only
overfits; a second one, trained from another seed in the time left, is wrong in other places,
and the average of their probabilities beats either (Jay Chou: 158.2 -> 153.9 held-out, with
the count model; `benchmarks/ensemble_probe.py`). `Ensemble` has CharRNN's interface, so
evaluation, the mixture and generation take either:

    forward(x (B, T), state) -> (log mean probability (B, T, V), state)

Log-probabilities are valid logits (softmax gives them back). The state is the members'
states stacked on the layer axis: a tuple of (K*L, B, H) tensors, so carrying, detaching and
`Stepper.split` work unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charlm.models.charrnn import CharRNN
from charlm.models.state import State
from charlm.models.stepper import Stepper, StepperBackend


def mean_probability(logp: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (K, ...) of K networks -> the log of their mean probability (...)."""
    return torch.logsumexp(logp, dim=0) - math.log(len(logp))


def average_logprobs(logits: list[torch.Tensor]) -> torch.Tensor:
    """Each member's logits (..., V) -> the log of their mean probability (..., V)."""
    return mean_probability(torch.stack([torch.log_softmax(z.float(), dim=-1) for z in logits]))


def _chunks(state: State | None, k: int) -> list[State | None]:
    if state is None:
        return [None] * k
    return [tuple(s.chunk(k, dim=0)[i] for s in state) for i in range(k)]


class Ensemble(nn.Module):
    """Networks of one ModelConfig, averaged in probability."""

    def __init__(self, members: list[CharRNN]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        outs = [m(x, s) for m, s in zip(self.members, _chunks(state, len(self.members)),
                                        strict=True)]  # fmt: skip
        states = [s for _, s in outs]  # each a tuple of (L, B, H)
        joined = tuple(torch.cat(parts, dim=0) for parts in zip(*states, strict=True))
        return average_logprobs([z for z, _ in outs]), joined  # (B, T, V), (K*L, B, H)


def networks(model: nn.Module) -> list[CharRNN]:
    """The networks a model averages: its members, or itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def join(nets: list[CharRNN]) -> nn.Module:
    """One network as itself, several as their Ensemble."""
    return nets[0] if len(nets) == 1 else Ensemble(nets)


class EnsembleStepper:
    """Stepper's interface over an Ensemble: one fused step per member, then the average."""

    def __init__(self, model: Ensemble, dtype: torch.dtype = torch.float32) -> None:
        self.model = model
        self.steppers = [Stepper(m, dtype) for m in model.members]
        self.layers = model.cfg.layers
        self.split, self.cast_states = Stepper.split, self.steppers[0].cast_states

    @torch.inference_mode()
    def prime(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[State]]:
        """As Stepper.prime, over the members (their states one after another)."""
        logits, state = self.model(ids)  # (R, T, V)
        return logits[:, -1], self.cast_states(self.split(state))

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, states: list[State]) -> tuple[torch.Tensor, list[State]]:
        """ids (B,), per-layer states of all members (K*L of them) -> ((B, V), states)."""
        logits, new = [], []
        for k, stepper in enumerate(self.steppers):
            z, s = stepper.step(ids, states[k * self.layers : (k + 1) * self.layers])
            logits.append(z)
            new.extend(s)
        return average_logprobs(logits), new


def make_stepper(model: nn.Module, dtype: torch.dtype = torch.float32) -> StepperBackend:
    """The one-step generator for a CharRNN or an Ensemble."""
    return EnsembleStepper(model, dtype) if isinstance(model, Ensemble) else Stepper(model, dtype)
