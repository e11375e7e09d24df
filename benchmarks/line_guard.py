#!/usr/bin/env python3
"""The line guard in generation with the song cache: does a line kept from repeating end
well, or run on with a tail? Old code against new, the same checkpoint and seeds.

    .venv/bin/python benchmarks/line_guard.py --checkpoint jay=PATH/best.pt \\
        --checkpoint tang=PATH/best.pt --previous HEAD~1

For each checkpoint, `charlm generate --adapt` (`--samples` songs of 40 lines a seed) with
this tree's code and with the code of `--previous` (a git revision, checked out in a temporary
worktree), and per version:
  extends earlier  share of lines that are a whole line the song already has twice, plus
                   more (the signature of a forbidden break: 我爱你 -> 我爱你的一个人天)
  long lines       share of lines longer than twice the median line of the checkpoint's
                   own held-out text
  repeats          share of lines equal to one of the 15 before them (benchmarks/adapt.py)
  wall             seconds to generate them all
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(code: Path, pt: str, seeds: int, samples: int) -> tuple[list[str], float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    texts, t0 = [], time.perf_counter()
    for seed in range(1, seeds + 1):
        cmd = [sys.executable, "-m", "charlm", "generate", "--checkpoint", pt, "--adapt",
               "--num-samples", str(samples), "--lines", "40", "--length", "1200", "--seed",
               str(seed), "--json", "--quiet"]  # fmt: skip
        out = subprocess.run(cmd, cwd=code, env=env, check=True, capture_output=True,
                             text=True).stdout  # fmt: skip
        texts += [json.loads(x)["text"] for x in out.splitlines()]
    return texts, time.perf_counter() - t0


def figures(texts: list[str], median: float) -> dict[str, float]:
    extends = long = repeats = total = 0
    for text in texts:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            total += 1
            before = [p for p in lines[:i] if p.strip()]
            extends += any(len(line) > len(p) and line.startswith(p) and before.count(p) >= 2
                           for p in set(before))  # fmt: skip
            long += len(line) > 2 * median
            repeats += line in lines[max(0, i - 15) : i]
    return {"extends": extends / total, "long": long / total, "repeats": repeats / total,
            "lines": total}  # fmt: skip


def held_out_median(pt: str) -> float:
    """The median length of the non-blank lines of the checkpoint's held-out text."""
    from charlm.data.corpus import CorpusOptions, read_corpus, split_text
    from charlm.store import checkpoint

    record = checkpoint.load(pt)["corpus"]
    text = read_corpus(record["source"], CorpusOptions(**record["options"])).text
    held = split_text(text, record["val_fraction"])[1]
    return statistics.median(len(x) for x in held.split("\n") if x.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--previous", default="HEAD~1", help="the git revision to race against")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--samples", type=int, default=16)
    args = ap.parse_args()
    print(
        "| corpus | code | extends a line written twice | longer than 2x median | "
        "repeats one of 15 before | lines | wall |\n|---|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.previous],
                       cwd=ROOT, check=True)  # fmt: skip
        try:
            for name, pt in (c.split("=", 1) for c in args.checkpoint):
                pt = str(Path(pt).resolve())
                median = held_out_median(pt)
                for label, code in ((args.previous, old), ("this tree", ROOT)):
                    texts, wall = generate(code, pt, args.seeds, args.samples)
                    f = figures(texts, median)
                    print(f"| {name} (median line {median:g}) | {label} | {f['extends']:.1%} | "
                          f"{f['long']:.1%} | {f['repeats']:.1%} | {f['lines']} | {wall:.1f} s |",
                          flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)


if __name__ == "__main__":
    main()
