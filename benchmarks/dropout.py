#!/usr/bin/env python3
"""Training step time with torch's CPU dropout against charlm's (charlm/models/dropout.py).

    .venv/bin/python benchmarks/dropout.py [--steps 20] [--rounds 3]

For the shapes the defaults pick (the King James Bible's first 1.1M characters, the Jay Chou
lyrics, the Tang poems, each at 600 s), one optimizer step on random ids, bf16 autocast as the
trainer does on a CPU that has it: the median step time with each dropout. Old and new
alternate in rounds in one process (the machine is shared and noisy). Also the kept share of
the new mask (it should be 1 - p).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlm.config import ModelConfig  # noqa: E402
from charlm.models import charrnn  # noqa: E402
from charlm.models import dropout as fast  # noqa: E402
from charlm.system.runtime import bf16_supported  # noqa: E402
from charlm.training.step import train_step  # noqa: E402

# name: (vocab, embed, hidden, dropout, batch, window), as the defaults chose them
SHAPES = {
    "kjv11 (LSTM 1x512)": (73, 256, 512, 0.227, 32, 128),
    "Jay Chou (LSTM 1x256)": (2525, 128, 256, 0.6, 32, 64),
    "Tang (LSTM 1x256)": (9403, 128, 256, 0.2, 32, 128),
}


def torch_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    return F.dropout(x, p, training=training) if p else x


def step_times(model, opt, x, y, steps: int, bf16: bool) -> list[float]:
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, opt, x, y, None, lr=1e-3, clip=1.0, bf16=bf16)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    bf16 = bf16_supported(torch.device("cpu"))
    x = torch.randn(2_000_000)
    kept = float((fast.dropout(x, 0.3) != 0).float().mean())
    print(f"new mask, p = 0.3: kept {kept:.4f} of 2M (want 0.7000); bf16 autocast: {bf16}")
    print("| shape | torch dropout ms/step | charlm dropout ms/step | speed-up |")
    print("|---|---|---|---|")
    for name, (v, e, h, drop, b, t) in SHAPES.items():
        cfg = ModelConfig(vocab_size=v, cell="lstm", embed=e, hidden=h, layers=1,
                          dropout=drop, tie=True)  # fmt: skip
        model = charrnn.CharRNN(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        xs, ys = torch.randint(0, v, (b, t)), torch.randint(0, v, (b, t))
        times: dict[str, list[float]] = {"torch": [], "charlm": []}
        for _ in range(args.rounds):
            for which, fn in (("torch", torch_dropout), ("charlm", fast.dropout)):
                charrnn.dropout = fn  # what CharRNN's weight drop calls
                model.drop.forward = lambda z, fn=fn, m=model.drop: fn(z, m.p, m.training)
                step_times(model, opt, xs, ys, 2, bf16)  # warm
                times[which] += step_times(model, opt, xs, ys, args.steps, bf16)
        old, new = (statistics.median(times[k]) * 1000 for k in ("torch", "charlm"))
        print(f"| {name} | {old:.1f} | {new:.1f} | {old / new:.2f}x |")


if __name__ == "__main__":
    main()
