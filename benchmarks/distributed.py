#!/usr/bin/env python3
"""One process against N processes under torchrun, on the same global batch.

    .venv/bin/python benchmarks/distributed.py                    # jaychou, 1 vs 2 processes
    .venv/bin/python benchmarks/distributed.py --steps 300 --processes 2 --device cuda

For each row: `charlm train` for --steps steps on the same corpus, model, seed and global
batch (--global-batch rows a step: 1 x G, or N x G/N under torchrun), dropout 0 so the runs
can be compared weight for weight. Prints wall time, training chars/s (the run's own figure,
all processes together), held-out perplexity at the end, and the largest weight difference
from the one-process run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JAY = ROOT.parent / "shared" / "corpora" / "jaychou_lyrics.txt.zip"
PY = sys.executable


def train(ck: Path, run: str, n: int, args: list[str]) -> dict:
    """One `charlm train`, with n processes (torchrun) or one; its --json summary + wall."""
    if n == 1:
        cmd = [PY, "-m", "charlm", "train"]
    else:  # `--` keeps torchrun from reading charlm's --run as its own --run-path
        port = str(29400 + os.getpid() % 500)
        cmd = [PY, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
               "--master-port", port, "-m", "charlm", "--", "train"]  # fmt: skip
    cmd += ["--checkpoint-dir", str(ck), "--run", run, "--json", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return {**json.loads(p.stdout.splitlines()[-1]), "wall": wall}


def max_weight_diff(a: Path, b: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from charlm.store import checkpoint

    wa, wb = (checkpoint.load(p)["model_state"] for p in (a, b))
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(JAY))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--global-batch", type=int, default=32)
    ap.add_argument("--processes", type=int, nargs="+", default=[2])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    common = ["--corpus", a.corpus, "--max-steps", str(a.steps), "--hidden", str(a.hidden),
              "--layers", "1", "--dropout", "0", "--seed", "1", "--eval-every", str(a.steps),
              "--device", a.device]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp)
        for n in [1, *a.processes]:
            per = a.global_batch // n
            s = train(ck, f"p{n}", n, [*common, "--batch-size", str(per)])
            diff = max_weight_diff(ck / "p1" / "last.pt", ck / f"p{n}" / "last.pt")
            rows.append((f"{n} x {per}", s["wall"], s["chars_per_s"], s["best_val_ppl"], diff))
    print(f"{a.steps} steps, global batch {a.global_batch}, LSTM 1x{a.hidden}, {a.device}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr)  # fmt: skip
    print("| processes x batch | wall (s) | train chars/s | held-out ppl | max weight diff |")
    print("|---|---|---|---|---|")
    for name, wall, cps, ppl, diff in rows:
        print(f"| {name} | {wall:.1f} | {cps:,.0f} | {ppl:.3f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
