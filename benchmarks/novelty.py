#!/usr/bin/env python3
"""How much does generated text copy the training lyrics, and what does --max-copy cost?

    .venv/bin/python benchmarks/novelty.py --checkpoint checkpoints/jay/best.pt
    .venv/bin/python benchmarks/novelty.py --checkpoint ... --chars 3000 --seed 3

For --max-copy off, 16 and 8 (with the song cache, and without it): 3,000 generated
characters (`--length`, one sample), their perplexity under the checkpoint's static model
(`charlm evaluate --corpus <the text> --split all`: how natural the model finds its own text),
the share of their 4-, 8- and 16-grams found in the training text, and the longest copy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def charlm(*args: str) -> str:
    out = subprocess.run([PY, "-m", "charlm", *args, "--quiet"], cwd=ROOT, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--chars", type=int, default=3000)
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    print("| --max-copy | song cache | ppl of the text under the model | copied 4-grams | "
          "8-grams | 16-grams | longest copy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for adapt in ("--no-adapt", "--adapt"):
            for max_copy in ("0", "16", "8"):
                rec = json.loads(charlm("generate", "--checkpoint", args.checkpoint, "--length",
                                        str(args.chars), "--seed", str(args.seed), "--max-copy",
                                        max_copy, "--report-novelty", "--json", adapt))  # fmt: skip
                text = Path(tmp) / "gen.txt"
                text.write_text(rec["text"], encoding="utf-8")
                ev = json.loads(charlm("evaluate", "--checkpoint", args.checkpoint, "--corpus",
                                       str(text), "--split", "all", "--json"))  # fmt: skip
                nov = rec["novelty"]
                shares = [f"{nov['copied_ngrams'][n]:.1%}" for n in ("4", "8", "16")]
                print(f"| {'off' if max_copy == '0' else max_copy} | "
                      f"{'on' if adapt == '--adapt' else 'off'} | {ev['perplexity']:.1f} | "
                      f"{' | '.join(shares)} | {nov['longest_copy']} |")  # fmt: skip


if __name__ == "__main__":
    main()
