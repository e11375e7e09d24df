"""A run's finished networks, averaged with the one in training (see ensemble.py for why).

When the plateau rule stops a network and the time budget has room for another to go half as
long as the last one took to its best, the trainer freezes the network's best weights here
and starts a fresh one from another seed; every later evaluation scores the average of all of
them, and best.pt ships that average. Only runs with --max-time grow members (`--members`, at
most 4 by default); a member that never improved the shipped score ends the run, as early
stopping did before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.models.charrnn import CharRNN
from charlm.models.ensemble import join, mean_probability
from charlm.system.distributed import Dist

# A new member needs this share of the time the last one took to reach its best. Its best, not
# its stop: the plateau rule's patience after the best is time a network cut short by the
# deadline does not need. And a share, because a fresh network helps the average long before
# its own best (what it reached by the deadline is averaged in only where that helps): on the
# Jay Chou lyrics at 600 s the second and third networks improved the average 31 s and 34 s
# after they started, a third of the 74-102 s they took to their best. Timed at 1.2 times the
# last network's stop, two such runs ended at 455 s and 468 s with 3 networks, the 132-145 s
# left unused; at half the time to the best, 4 and 5 networks trained to the deadline (shipped
# 144.75 and 144.11 against 145.39).
TIME_MARGIN = 0.5


def new_member_seed(seed: int, member: int) -> int:
    """The seed member k (> 0) starts from: its own, derived from the run's."""
    return (seed + 7919 * member) % 2**63


def may_grow(cfg: TrainConfig, prog: Any, has_best: bool) -> bool:
    """Whether a stopped network may be followed by another (the time left is checked by the
    trainer): only with a time budget, within --members, and only after a network that
    improved what ships (one that did not says more of the same will not help)."""
    helped = prog.best_step > prog.member_start_step and has_best
    return cfg.max_time > 0 and prog.member + 1 < cfg.members and helped


def member_times(prog: Any) -> tuple[float, float]:
    """The training network's seconds to its best and to now, since it started; the first
    prorated by steps (evaluations make a step's time uneven, not by much)."""
    took = prog.elapsed_s - prog.member_start_s
    steps = max(prog.step - prog.member_start_step, 1)
    to_best = min(max(prog.best_step - prog.member_start_step, 0) / steps, 1.0)
    return took * to_best, took


def room_for_member(
    cfg: TrainConfig, prog: Any, members: Members, dist: Dist, until: float, done: float = 0
) -> bool:
    """Whether a network the plateau rule stopped may be followed by a fresh one: may_grow,
    before the learning rate's decay has begun (`done`, the fraction of the run behind us: a
    network started in it would never train at full rate), and the time a new one could train
    (until time.monotonic() `until`: the deadline less what stopping costs) has room for
    TIME_MARGIN of the time the last took to its best, agreed by every process."""
    to_best, _ = member_times(prog)
    in_decay = cfg.decay > 0 and done >= 1 - cfg.decay
    wanted = may_grow(cfg, prog, members.best is not None) and not in_decay
    return wanted and not dist.any(until - time.monotonic() < TIME_MARGIN * to_best)


class Members:
    """Frozen networks, their log-probabilities on the texts each evaluation scores (they do
    not change, so they are scored once), and the training network's best weights so far."""

    def __init__(self, cfg: ModelConfig, device: torch.device | str) -> None:
        self.cfg, self.device = cfg, device
        self.frozen: list[CharRNN] = []
        self.best: dict[str, torch.Tensor] | None = None  # the training network at its best
        self._cache: dict[str, torch.Tensor] = {}  # text name -> (K, N-1) frozen log-probs

    def add(self, state: dict[str, torch.Tensor]) -> None:
        net = CharRNN(self.cfg, self.device)
        net.load_state_dict(state)
        net.eval().requires_grad_(False)
        self.frozen.append(net)
        self._cache.clear()

    def remember_best(self, model: torch.nn.Module) -> None:
        self.best = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def freeze_best(self) -> None:
        """The training network's best weights become a member."""
        if self.best is not None:
            self.add(self.best)
        self.best = None

    def shipped(self, model: torch.nn.Module) -> torch.nn.Module:
        """What generates: the frozen members and `model`, averaged (or `model` alone)."""
        return join([*self.frozen, model])

    def average(
        self,
        name: str,
        ids: torch.Tensor,
        current: torch.Tensor,
        score: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The log of the mean probability of ids[1:] (N-1,) over the frozen members and the
        training network (whose log-probs are `current`); `score(net, ids)` scores a frozen
        one the first time text `name` is asked for."""
        if not self.frozen:
            return current
        if name not in self._cache:
            self._cache[name] = torch.stack([score(net, ids) for net in self.frozen])
        return mean_probability(torch.cat([self._cache[name], current[None]]))  # (K, N-1)

    def states(self) -> list[dict[str, torch.Tensor]]:
        return [net.state_dict() for net in self.frozen]
