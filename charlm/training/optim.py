"""The optimizer, the learning-rate rule and the plateau rule: small pure pieces of training.

lr(step) = base lr x plateau scale x linear warm-up x decay
plateau: the scale halves after every `lr_patience` scheduled evaluations without a
         significant improvement; training stops after `early_stop` of them in a row
decay:   over the last `decay` of the run (of --max-time, else of the step limit) the rate
         falls linearly to zero. A rate held up to the end leaves the weights bouncing at the
         noise level of the last steps; one that reaches zero at the deadline settles them
         (budgeted training, Li et al. 2020). Before the decay, the rate is constant, so the
         plateau rule and averaged networks work on small corpora as before.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from charlm.config import TrainConfig
from charlm.errors import CheckpointError

# An evaluation counts as progress for the plateau rule only if it beats the best scheduled
# score by this relative margin (as torch's ReduceLROnPlateau, threshold 1e-4): a model
# that has stopped learning must not reset the counter on float noise.
PLATEAU_THRESHOLD = 1e-4


# A stretched cadence (cfg.eval_share, options.EVAL_SHARE) evaluates at least once in this
# many of --eval-every's: the plateau rule counts evaluations, and a stretched cadence is
# slower to see a network stop improving
MAX_EVAL_STRETCH = 4


def eval_interval(cfg: TrainConfig, eval_s: float, step_s: float) -> int:
    """Steps from this evaluation to the next: cfg.eval_every, or with cfg.eval_share (see
    options.EVAL_SHARE) as many as make an evaluation that took eval_s seconds at most that share of
    the training time between, at step_s seconds a step."""
    if cfg.eval_share <= 0 or step_s <= 0:
        return cfg.eval_every
    need = math.ceil(eval_s / (cfg.eval_share * step_s))
    return min(max(cfg.eval_every, need), MAX_EVAL_STRETCH * cfg.eval_every)


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


def lr_at(cfg: TrainConfig, step: int, lr_scale: float, done: float = 0.0) -> float:
    """Linear warm-up over cfg.warmup steps, then the base rate times the plateau scale, times
    the decay once `done` (the fraction of the run behind us) enters the last cfg.decay."""
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    return cfg.lr * lr_scale * warm * decay_factor(cfg.decay, done)


DECAY_FLOOR = 0.01  # the last steps still move the weights a little: a zero rate wastes them


def decay_factor(decay: float, done: float) -> float:
    """1 until the last `decay` of the run, then linearly down to DECAY_FLOOR at its end."""
    if decay <= 0:
        return 1.0
    return max(DECAY_FLOOR, min(1.0, (1.0 - done) / decay))


@dataclass(frozen=True)
class RunLength:
    """How far through the run training is: the larger of the time used of the budget (from
    the loop's start to the deadline, less what the final evaluation and save will take) and
    the steps taken of the step limit. Steps count from the run's start, so a resumed run
    decays where a straight one would; time counts within this invocation's --max-time, from
    the start of the network in training (a new averaged network gets a decay of its own)."""

    step_limit: int
    started: float  # time.monotonic() when the loop started
    deadline: float | None  # time.monotonic() the budget ends; None without --max-time

    def done(self, step: int, closing_s: float) -> float:
        by_steps = step / max(1, self.step_limit)
        if self.deadline is None:
            return min(1.0, by_steps)
        span = max(1e-6, self.deadline - closing_s - self.started)
        return min(1.0, max(by_steps, (time.monotonic() - self.started) / span))


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
