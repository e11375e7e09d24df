"""Held-out scoring during training, and the decisions each evaluation takes.

    HeldOut.scores   the mixture weight refitted on the tune slice, then the held-out text
                     under what ships (networks + count model) and under the networks alone
    HeldOut.judge    rank 0: did what ships improve (best.pt moves), and the plateau rule

Under torchrun every process scores its share of the streams; rank 0 alone fits and decides,
and `decisions` is what it broadcasts so the others follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from charlm.config import TrainConfig
from charlm.data.prepared import RunData
from charlm.scoring.adapt import Adaptation, blank_line_ids
from charlm.scoring.evaluate import perplexity, target_logprobs
from charlm.scoring.lexicon import for_corpus
from charlm.scoring.mixture import Scores, kn_logprobs, score_text
from charlm.scoring.mixture_fit import MixtureFit, fit_slice
from charlm.system.distributed import Dist
from charlm.training.optim import Plateau
from charlm.training.progress import Progress, TrainState

# Held-out characters scored at each training evaluation: the first ones of the split, the same
# every time, so a long held-out text does not eat the time budget (`charlm evaluate` scores the
# whole split). 50k characters put the perplexity's sampling noise well under 1 %.
EVAL_CHARS = 50_000
# What rank 0 decides at an evaluation and the other processes adopt.
DECISIONS = ("best_val_ppl", "best_step", "best_networks", "plateau", "mix_weight", "adapt")

Stop = Callable[[], bool] | None


class HeldOut:
    """The held-out text, the tune slice and the count model fitted on the training text."""

    def __init__(
        self, data: RunData, cfg: TrainConfig, device: torch.device, dist: Dist, prog: Progress
    ) -> None:
        self.cfg, self.device, self.dist = cfg, device, dist
        self.eval_ids = data.val_ids[: EVAL_CHARS + 1]  # (<= EVAL_CHARS + 1,)
        self.mix_fit: MixtureFit | None = None  # rank 0 fits and ships it; the others score
        mixed = data.tune_ids is not None and cfg.kn_order
        # what each fit scores (every process: all of them help score the network)
        self.tune_ids = fit_slice(data.tune_ids, data.train_ids, len(data.vocab)) if mixed else None
        if self.tune_ids is not None and dist.main:
            lexicon = for_corpus(cfg.lexicon, data.vocab, data.train_ids)
            self.mix_fit = MixtureFit(data.train_ids, data.tune_ids, cfg.kn_order,
                                      len(data.vocab), blank_line_ids(data.vocab),
                                      lexicon)  # fmt: skip
            self.val_kn_logp = kn_logprobs(self.mix_fit.kn, self.eval_ids)
        self.mixture = None
        if self.mix_fit:
            adapt = prog.adapt and Adaptation.from_payload(prog.adapt)
            self.mixture = self.mix_fit.fit(weight=prog.mix_weight, adaptation=adapt)

    def scores(self, state: TrainState, stop: Stop = None) -> Scores | None:
        """The held-out text under what ships (refitting the mixture weight on the tune slice
        first) and under the network alone; None without held-out text, and on every process
        but rank 0 (they only help score the network). `stop()` true: EvalStopped."""
        if len(self.eval_ids) < 2:
            return None
        if self.tune_ids is not None:
            tune_logp = self._network_logprobs(state, self.tune_ids, "tune", stop)
            if self.mix_fit:
                self.mixture = self.mix_fit.fit(tune_logp)
                state.prog.mix_weight = self.mixture.weight
                adaptation = self.mixture.adaptation
                state.prog.adapt = adaptation.to_payload() if adaptation else None
        net_logp = self._network_logprobs(state, self.eval_ids, "held-out", stop)
        if not self.dist.main:
            return None
        kn_logp = self.val_kn_logp if self.mix_fit else None
        return score_text(state.shipped(), self.eval_ids, self.device, self.mixture, kn_logp,
                          net_logp=net_logp)  # fmt: skip

    def _network_logprobs(
        self, state: TrainState, ids: torch.Tensor, name: str, stop: Stop
    ) -> torch.Tensor:
        """The shipped networks' log-probs of ids[1:] (N-1,) (the training one averaged with
        the finished members), scored by all processes together."""

        def score(net: torch.nn.Module, text: torch.Tensor) -> torch.Tensor:
            return target_logprobs(net, text, self.device, stop=stop, dist=self.dist)

        return state.members.average(name, ids, score(state.model, ids), score)

    def judge(
        self, scores: Scores | None, train_loss: float, state: TrainState, scheduled: bool
    ) -> bool:
        """Rank 0's decisions: whether what ships improved (then best.pt must move), and, at a
        scheduled evaluation, the plateau rule. Without held-out text, "best" falls back to
        the training perplexity."""
        prog = state.prog
        score = scores.shipped.perplexity if scores else perplexity(train_loss)
        finite = math.isfinite(score) and all(
            bool(p.isfinite().all()) for p in state.model.parameters()
        )
        improved = finite and score < prog.best_val_ppl
        if improved:
            prog.best_val_ppl, prog.best_step = score, prog.step
            prog.best_networks = prog.member + 1
        if scheduled:
            prog.plateau = asdict(Plateau(**prog.plateau).after(score, finite, self.cfg))
        return improved

    def count_model(self, prog: Progress) -> dict[str, Any] | None:
        """The count model and fitted weights as a checkpoint stores them ("kn")."""
        if not self.mix_fit:
            return None
        return self.mix_fit.payload(prog.mix_weight, self.mixture.adaptation)


def decisions(prog: Progress) -> dict[str, Any]:
    """Rank 0's decisions at an evaluation, as the other processes adopt them."""
    return {k: getattr(prog, k) for k in DECISIONS}
