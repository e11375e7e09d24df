#!/usr/bin/env python3
"""Held-out perplexity against wall time on the Jay Chou corpus: charlm's defaults, the
textbook setting, and the Kneser-Ney 8-gram baseline, in one run.

    .venv/bin/python benchmarks/quality.py                 # 2 x 300 s, table on stdout
    .venv/bin/python benchmarks/quality.py --seconds 120   # shorter
    .venv/bin/python benchmarks/quality.py --png curves.png  # also a plot (needs matplotlib)

Split as charlm's: the last 10 % of the characters held out; characters unseen in training
count as unknown. Both networks are scored on exactly that text.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JAYCHOU = ROOT.parent / "shared" / "corpora" / "jaychou_lyrics.txt.zip"
MARKS = (10, 30, 60, 120, 300, 600)
TEXTBOOK = ["--cell", "rnn", "--embed", "0", "--hidden", "256", "--layers", "1", "--dropout", "0",
            "--batch-size", "32", "--seq-len", "35", "--optimizer", "sgd", "--lr", "100",
            "--clip", "0.01", "--warmup", "0", "--kn-order", "0", "--unk-prob", "0",
            "--eval-every", "50"]  # fmt: skip


def train(ck: Path, run: str, seconds: float, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "charlm", "train", "--corpus", str(JAYCHOU), "--run", run,
           "--checkpoint-dir", str(ck), "--max-time", str(seconds), "--seed", "1", "--quiet",
           "--early-stop", "0", *extra]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)
    return [json.loads(x) for x in (ck / run / "metrics.jsonl").read_text().splitlines()]


def best_by(recs: list[dict], t: float, key: str = "val_ppl") -> float | None:
    vals = [r[key] for r in recs if r["elapsed_s"] <= t and r.get(key) is not None]
    return min(vals) if vals else None


def kn_baseline() -> float:
    import torch

    from charlm.data.corpus import read_corpus, split_text
    from charlm.data.vocab import Vocab
    from charlm.scoring.kneser_ney import KneserNey

    train_text, val_text = split_text(read_corpus(str(JAYCHOU)).text, 0.1)
    v = Vocab.build(train_text)
    t0 = time.perf_counter()
    kn = KneserNey(v.encode(train_text).tolist(), len(v), 8)
    lp = kn.log_probs(v.encode(val_text).tolist())
    print(f"(Kneser-Ney 8-gram built and scored in {time.perf_counter() - t0:.1f} s)")
    del torch
    return math.exp(-lp.mean())


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--png", type=Path)
    p.add_argument("--scratch", action="store_true",
                   help="the defaults from scratch (--init-from none), as before a small "
                   "Chinese text started from the shipped base")  # fmt: skip
    args = p.parse_args()
    if not JAYCHOU.exists():
        sys.exit(f"{JAYCHOU} not found: this benchmark needs the shared Jay Chou corpus")
    sys.path.insert(0, str(ROOT))
    kn = kn_baseline()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp)
        ours = train(ck, "defaults", args.seconds, ["--init-from", "none"] if args.scratch else [])
        # the textbook setting on the same split (d2l's own slice would be the first 10k chars)
        book = train(ck, "textbook", args.seconds, TEXTBOOK)
    marks = [m for m in MARKS if m <= args.seconds]
    head = "| setting | " + " | ".join(f"ppl @ {m} s" for m in marks) + " |"
    print(head)
    print("|" + "---|" * (len(marks) + 1))
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(
        "| charlm defaults (mixture) | " + " | ".join(fmt(best_by(ours, m)) for m in marks) + " |"
    )
    print("| charlm defaults, network alone | "
          + " | ".join(fmt(best_by(ours, m, "val_ppl_net")) for m in marks) + " |")  # fmt: skip
    print("| textbook setting (one-hot RNN 256, SGD) | "
          + " | ".join(fmt(best_by(book, m)) for m in marks) + " |")  # fmt: skip
    print("| Kneser-Ney 8-gram (count table) | " + " | ".join(f"{kn:.1f}" for _ in marks) + " |")
    if args.png:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot", file=sys.stderr)
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        curves = [(ours, "charlm defaults", "val_ppl"), (ours, "network alone", "val_ppl_net"),
                  (book, "textbook", "val_ppl")]  # fmt: skip
        for recs, label, key in curves:
            ax.plot([r["elapsed_s"] for r in recs], [r[key] for r in recs], label=label)
        ax.axhline(kn, color="gray", linestyle="--", label="Kneser-Ney 8-gram")
        ax.set(xlabel="seconds (2 CPU cores)", ylabel="held-out perplexity", ylim=(100, 600))
        ax.legend()
        fig.savefig(args.png, dpi=120, bbox_inches="tight")
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
