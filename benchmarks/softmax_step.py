#!/usr/bin/env python3
"""Generation's step with one softmax and with two levels, and the two-level step as it was.

    .venv/bin/python benchmarks/softmax_step.py [--vocab 7662] [--rounds 20]

LSTM 1x384, tied 192-wide embedding, random weights, the Tang poems' two-level shape (7,662
characters, clusters from ids 192, 932, 2,672); each stepper takes 100 steps a round, rows
1, 8 and 32, then the log-softmax every consumer takes; the best round of each, interleaved
(the machine is shared). "before" normalises every level (charrnn.two_level, what the
stepper returned until two_level_scores): it is the reference for the speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN, two_level
from charlm.models.stepper import Stepper


class Before(Stepper):
    """The stepper as it was: every level normalised (two_level's log-probabilities)."""

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        w_p, b_p, table, bias = self.out
        u = F.linear(h, w_p, b_p)  # (B, E)
        w_c, b_c, _, _ = self.cluster
        z = F.linear(u, table, bias)  # (B, V)
        return two_level(z, F.linear(u, w_c, b_c), self.cfg.cutoffs, self.model.level)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=7662)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    shape = dict(vocab_size=args.vocab, cell="lstm", embed=192, hidden=384, layers=1, dropout=0)
    one = CharRNN(ModelConfig(**shape, tie=True)).eval()
    two = CharRNN(ModelConfig(**shape, tie=True, cutoffs=(192, 932, 2672))).eval()
    steppers = {
        "one softmax": (one, Stepper(one)),
        "two levels, before": (two, Before(two)),
        "two levels": (two, Stepper(two)),
    }
    print("| rows | " + " | ".join(steppers) + " |", file=sys.stderr)
    print("|---:|" + "---:|" * len(steppers), file=sys.stderr)
    for rows in (1, 8, 32):
        x = torch.randint(args.vocab, (rows, 4))
        start = {n: Stepper.split(m(x)[1]) for n, (m, _) in steppers.items()}
        best = dict.fromkeys(steppers, 0.0)
        for _ in range(args.rounds):
            for name, (_, stepper) in steppers.items():
                state, t = start[name], time.perf_counter()
                for _ in range(100):
                    z, state = stepper.step(x[:, -1], state)
                    torch.log_softmax(z, -1)
                best[name] = max(best[name], 100 * rows / (time.perf_counter() - t))
        cells = " | ".join(f"{v:,.0f}" for v in best.values())
        print(f"| {rows} | {cells} |  (characters a second)", file=sys.stderr)


if __name__ == "__main__":
    main()
