#!/usr/bin/env python3
"""From scratch against from the shipped Chinese base (`train --init-from zh`), same budget.

    .venv/bin/python benchmarks/finetune.py                          # 2 and 10 minutes
    .venv/bin/python benchmarks/finetune.py --budgets 120 --corpora jay6k,jay20k,bundled
    .venv/bin/python benchmarks/finetune.py --starts scratch,default   # what the defaults pick

For each corpus and budget: held-out perplexity of what ships (the mixture with the count
model), of the network alone, adapted to the text as it is read (`evaluate --adapt`: the
song cache and dynamic evaluation), the network's mixture weight, and the share of
16-character spans of generated text copied from the training text (`generate
--report-novelty --max-copy 0`, 16 lines, seed 1: the model's own tendency, without the
default guard). Seed 1; the split is charlm's (last 10 % held out). Rows: scratch
(`--init-from none`), base (`--init-from zh`) and default (no option: a small Chinese text
starts from the base by itself). A fine-tuned run's vocabulary is the corpus's, as a
from-scratch run's is, so both score a held-out character the training text lacks as the
one unknown symbol; with `--tune-args --keep-base-chars` it is scored as itself, and the
column "unseen as <unk>" scores it alike again.
Corpora: the Jay Chou lyrics, their first 6,000 and 20,000 characters (jay6k, jay20k), and
the bundled Tang/Song corpus (its held-out Tang poems are in the base's training text: that
row shows what the demo gets, not a fair test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JAYCHOU = ROOT.parent / "shared" / "corpora" / "jaychou_lyrics.txt.zip"
BUNDLED = ROOT / "corpora" / "tang_song_zh.zip"


def charlm(*args: str, quiet: bool = True) -> str:
    cmd = [sys.executable, "-m", "charlm", *args]
    out = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=quiet, text=True)
    return out.stdout if quiet else ""


def corpus_path(name: str, tmp: Path) -> Path:
    if name == "jay":
        return JAYCHOU
    if name == "bundled":
        return BUNDLED
    if name in ("jay6k", "jay20k"):
        from charlm.data.corpus import read_corpus

        p = tmp / f"{name}.txt"
        p.write_text(read_corpus(str(JAYCHOU)).text[: int(name[3:-1]) * 1000], encoding="utf-8")
        return p
    raise SystemExit(f"unknown corpus {name!r}: jay, jay6k, jay20k or bundled")


def measure(corpus: Path, ck: Path, run: str, seconds: int, start: list[str]) -> dict:
    t0 = time.perf_counter()
    charlm("train", "--corpus", str(corpus), "--run", run, "--checkpoint-dir", str(ck),
           "--max-time", str(seconds), "--seed", "1", "--quiet", *start)  # fmt: skip
    wall = time.perf_counter() - t0
    ev = json.loads(charlm("evaluate", "--checkpoint", run, "--checkpoint-dir", str(ck), "--json",
                           "--adapt"))  # fmt: skip
    gen = [json.loads(x) for x in charlm(
        "generate", "--checkpoint", run, "--checkpoint-dir", str(ck), "--prefix", "分开",
        "--lines", "16", "--length", "400", "--seed", "1", "--report-novelty", "--json",
        "--max-copy", "0",  # the model's own tendency to copy, not the guard's effect
    ).splitlines()]  # fmt: skip
    copied = gen[0]["novelty"]["copied_ngrams"].get("16") if gen else None
    return {
        "ppl": ev["perplexity"],
        "ppl_unk": like_for_like(ck, run),
        "net": (ev.get("network") or ev)["perplexity"],
        "adapted": (ev.get("adapted") or {}).get("perplexity"),
        "w": ev.get("mix_weight"),
        "copied16": copied,
        "unknown": ev["unknown_chars"],
        "wall_s": wall,
        "text": gen[0]["text"] if gen else "",
    }


def like_for_like(ck: Path, run: str) -> float:
    """Held-out perplexity with every character the run's training text lacks scored as the
    one unknown symbol, as a from-scratch run scores it: a fine-tuned run knows such
    characters from its base and is otherwise charged for them one by one."""
    import torch

    from charlm import api

    lm = api.load(run, checkpoint_dir=ck)
    split = lm.corpus_split(None, "val")
    seen = torch.zeros(len(lm.vocab), dtype=torch.bool)
    seen[split.train_ids.long()] = True
    ids = split.ids.long().clone()
    ids[~seen[ids]] = 0  # UNK_ID
    return lm.score(ids)["perplexity"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default="120,600", help="seconds, comma-separated")
    ap.add_argument("--corpora", default="jay,jay6k,bundled")
    ap.add_argument("--base", default="zh", help="what --init-from gets")
    ap.add_argument("--show-text", action="store_true", help="print the generated lines too")
    ap.add_argument("--tune-args", default="", help="extra train options for the base's runs")
    ap.add_argument("--keep", type=Path, help="train into this folder and keep the runs")
    ap.add_argument(
        "--starts", default="scratch,base", help="rows, comma-separated: scratch, base, default"
    )
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in a.corpora.split(","):
            corpus = corpus_path(name, tmp)
            for seconds in map(int, a.budgets.split(",")):
                tuned = ["--init-from", a.base, *a.tune_args.split()]
                starts = {
                    "scratch": ("scratch", ["--init-from", "none"]),
                    "base": (f"from {a.base}", tuned),
                    "default": ("default", []),
                }
                for label, start in (starts[k] for k in a.starts.split(",")):
                    run = f"{name}-{seconds}-{label.split()[0]}"
                    r = measure(corpus, a.keep or tmp / "ck", run, seconds, start)
                    rows.append((name, seconds, label, r))
                    print(f"{name} {seconds}s {label}: {r['ppl']:.1f}", file=sys.stderr)
                    if a.show_text:
                        print(r["text"], file=sys.stderr)
    print("| corpus | budget | start | held-out ppl (ships) | the same, unseen as <unk> "
          "| network alone | adapted | mixture weight | copied 16-grams "
          "| unknown held-out chars | wall |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, seconds, label, r in rows:
        w = "-" if r["w"] is None else f"{r['w']:.2f}"
        c = "-" if r["copied16"] is None else f"{100 * r['copied16']:.0f} %"
        ad = "-" if r["adapted"] is None else f"{r['adapted']:.2f}"
        print(f"| {name} | {seconds} s | {label} | {r['ppl']:.2f} | {r['ppl_unk']:.2f} "
              f"| {r['net']:.2f} | {ad} | {w} | {c} "
              f"| {r['unknown']} | {r['wall_s']:.0f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
