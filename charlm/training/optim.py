"""The optimizer, the learning-rate rule and the plateau rule: small pure pieces of training.

lr(step) = base lr x plateau scale x linear warm-up
plateau: the scale halves after every `lr_patience` scheduled evaluations without a
         significant improvement; training stops after `early_stop` of them in a row
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from charlm.config import TrainConfig
from charlm.errors import CheckpointError

# An evaluation counts as progress for the plateau rule only if it beats the best scheduled
# score by this relative margin (as torch's ReduceLROnPlateau, threshold 1e-4): a model
# that has stopped learning must not reset the counter on float noise.
PLATEAU_THRESHOLD = 1e-4


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over two groups: [0] matrices with cfg.weight_decay, [1] biases and
    other vectors without (decay only shifts them toward zero without regularising)."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        # Adam's weight_decay is L2 in the gradient; keep the user's value as given.
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def restore_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, state: dict
) -> torch.optim.Optimizer:
    """The optimizer of a resumed run. load_state_dict brings back the old group settings, so
    the current --weight-decay is applied afterwards: a change on --resume takes effect."""
    opt = make_optimizer(model, cfg)
    try:
        opt.load_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError) as e:  # torch's many ways to say no
        raise CheckpointError(
            f"optimizer_state does not fit this run's optimizer ({type(e).__name__}: "
            f"{str(e)[:80]}); start a new --run (its best.pt still generates)"
        ) from None
    opt.param_groups[0]["weight_decay"] = cfg.weight_decay
    return opt


def lr_at(cfg: TrainConfig, step: int, lr_scale: float) -> float:
    """Linear warm-up over cfg.warmup steps, then the base rate times the plateau scale."""
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    return cfg.lr * lr_scale * warm


@dataclass(frozen=True)
class Plateau:
    """Where the plateau rule stands: only scheduled evaluations move it, so the dynamics do
    not depend on where a run happened to be stopped and resumed."""

    best: float = float("inf")  # best score among scheduled evaluations
    bad_evals: int = 0  # scheduled evaluations in a row without significant improvement
    lr_scale: float = 1.0

    def after(self, score: float, finite: bool, cfg: TrainConfig) -> Plateau:
        """The plateau after one scheduled evaluation scoring `score`."""
        if finite and score < self.best * (1 - PLATEAU_THRESHOLD):
            return Plateau(score, 0, self.lr_scale)
        bad = self.bad_evals + 1
        scale = self.lr_scale * (0.5 if bad % cfg.lr_patience == 0 else 1.0)
        best = min(self.best, score) if finite else self.best
        return Plateau(best, bad, scale)

    def should_stop(self, cfg: TrainConfig) -> bool:
        return bool(cfg.early_stop) and self.bad_evals >= cfg.early_stop
