#!/usr/bin/env python3
"""Dynamic evaluation's two update rules raced on a checkpoint's held-out split.

    .venv/bin/python benchmarks/dynamic_rule.py --checkpoint RUN_OR_PT [--chars 20000]

The checkpoint's networks, count model and song cache stay as trained; only the step changes:

    sgd   theta -= lr * grad, then 1 % of the way back to the shipped weights (the rule of
          checkpoints fitted before the RMS rule)
    rms   theta -= lr * grad / (rms + EPS), the pull in proportion to rms (dynamic.py: what
          training fits now), with the scales the checkpoint stores, or for one fitted before
          them, read as training reads them: on the dynamic.SCALE_CHARS training characters
          before the tune slice (the estimate moves the adapted figure by ~1 %: Jay Chou 20.76
          with those, 20.99 with the last 3,200 characters, tune slice included)

Each row: the learning network alone, mixed with the count model as the checkpoint mixes (its
gate, reading the learning network's entropies, as `charlm evaluate --adapt` does; without a
gate one weight fitted on the scored text itself, the same advantage for every row), and with
the shipped song cache on top. `charlm evaluate --adapt` gives the fitted rule's own figures;
this table says which rule and rate the held-out text itself would have liked.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlm import api  # noqa: E402
from charlm.scoring import dynamic  # noqa: E402
from charlm.scoring.mixture import kn_logprobs, mix_logprobs  # noqa: E402
from charlm.scoring.mixture_fit import fit_weight  # noqa: E402

RULES = {"sgd": (0.01, 0.03, 0.1, 0.3), "rms": (0.001, 0.003, 0.01)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a run name, run folder or .pt file")
    ap.add_argument("--checkpoint-dir", default="checkpoints")
    ap.add_argument("--chars", type=int, default=20_000, help="held-out characters scored")
    args = ap.parse_args()
    torch.manual_seed(0)
    lm = api.load(args.checkpoint, checkpoint_dir=args.checkpoint_dir, device="cpu")
    m = lm.mixture
    if m is None or m.adaptation is None:
        sys.exit(f"{lm.path}: no count model and song cache to race the rules under")
    split = lm.corpus_split(None, "val")
    ids = split.ids[: args.chars + 1]
    kn = kn_logprobs(m.kn, ids)
    h_kn = torch.from_numpy(m.kn.entropies(ids))  # (N-1,) what a gate reads
    t0 = time.perf_counter()
    if m.dynamic is not None and m.dynamic.rms:
        rms, said = m.dynamic.rms, "the scales stored"
    else:
        mix_fraction = float(lm.payload.get("train_config", {}).get("mix_fraction", 0.05))
        fit = split.train_ids[: len(split.train_ids) - int(len(split.train_ids) * mix_fraction)]
        rms = dynamic.grad_scale(lm.model, fit[-(dynamic.SCALE_CHARS + 1) :].clone())
        said = f"the scales read in {time.perf_counter() - t0:.1f} s"

    def ppl(lp: torch.Tensor) -> float:
        return math.exp(-float(lp.double().mean()))

    print(f"{lm.path}: {len(ids) - 1:,} held-out characters; {said}", file=sys.stderr)
    print("| rule | rate | network alone | with the count model | adapted (with the cache) | s |")
    print("|---|---|---|---|---|---|")
    rows = [("static", 0.0)] + [(r, lr) for r, rates in RULES.items() for lr in rates]
    for rule, lr in rows:
        t0 = time.perf_counter()
        net, h = dynamic.dynamic_logprobs_and_entropy(
            lm.model, ids, lr, rms=rms if rule == "rms" else ()
        )
        mixed = (m.gate.mix(net, kn, h, h_kn) if m.gate is not None
                 else mix_logprobs(net, kn, fit_weight(net, kn)))  # fmt: skip
        both = m.adaptation.mix(mixed, ids)
        print(f"| {rule} | {lr:g} | {ppl(net):.2f} | {ppl(mixed):.2f} | {ppl(both):.2f} "
              f"| {time.perf_counter() - t0:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
