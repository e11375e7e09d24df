#!/usr/bin/env python3
"""The default training recipe against its anchors, per corpus and time budget, in one run.

    .venv/bin/python benchmarks/recipe.py                              # jay, kjv11, tang at 120 s
    .venv/bin/python benchmarks/recipe.py --budgets 120,600 --corpora kjv11,jay
    .venv/bin/python benchmarks/recipe.py --previous 2ae344b           # also an older charlm
    .venv/bin/python benchmarks/recipe.py --only new --extra "--decay 0.25"   # try a variant

For each corpus and each --max-time budget (a run of its own: the learning rate's decay is
fitted to the budget), the held-out perplexity of what best.pt ships (`charlm evaluate` on the
whole held-out split; with --adapt the song cache, dynamic evaluation and both) for:
  new       charlm train with its defaults (this tree)
  previous  the defaults of --previous REV (a git worktree of that commit), when asked for
  LSTM-512  a plain tied LSTM-512 trained the textbook way: embedding 128, dropout 0.2, AdamW,
            batch 32, window 128, the rate falling to zero over the budget, no count model
  KN-8      the Kneser-Ney 8-gram count model alone (no time budget: it is built once)
and the same in nats per character (ln ppl). The split is charlm's: the last 10 % held out,
characters unseen in training scored as one unknown symbol. Corpora: jay (the Jay Chou lyrics),
kjv11 (the first 1.1M characters of the King James Bible: English of a play's size), tang (the
Tang poems, 4.49M), bundled, or any path. Runs one after another, each with every core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
PLAIN_LSTM_512 = ["--cell", "lstm", "--hidden", "512", "--layers", "1", "--embed", "128",
                  "--tie", "--dropout", "0.2", "--seq-len", "128", "--batch-size", "32",
                  "--weight-decay", "0.01", "--kn-order", "0", "--members", "1",
                  "--decay", "1", "--unk-prob", "0"]  # fmt: skip


def corpus_path(name: str, tmp: Path) -> Path:
    """A corpus by short name; kjv11 is cut from the shared Bible into `tmp` (never kept)."""
    sys.path.insert(0, str(ROOT))
    if name == "jay":
        return SHARED / "jaychou_lyrics.txt.zip"
    if name == "tang":
        return SHARED / "quantangshi.txt.zip"
    if name == "bundled":
        from charlm.training.setup import default_corpus

        return default_corpus()
    if name == "kjv11":
        from charlm.data.corpus import read_corpus

        out = tmp / "kjv11.txt"
        out.write_text(read_corpus(str(SHARED / "kjv.txt.zip")).text[:1_100_000])
        return out
    return Path(name)


def train(tree: Path, corpus: Path, ck: Path, run: str, seconds: float, extra: list[str]) -> dict:
    """One `charlm train` of the tree at `tree`, then `charlm evaluate` (this tree's, with
    --adapt where the run has a count model) on the whole held-out split: the figures and the
    training command's wall time."""
    cmd = [sys.executable, "-m", "charlm", "train", "--corpus", str(corpus), "--run", run,
           "--checkpoint-dir", str(ck), "--max-time", str(seconds), "--seed", "1", "--quiet",
           "--json", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    adapt = ["--adapt"] if "--kn-order" not in extra else []
    ev = subprocess.run([sys.executable, "-m", "charlm", "evaluate", "--checkpoint", run,
                         "--checkpoint-dir", str(ck), "--json", *adapt], check=True,
                        cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    r = json.loads(ev.stdout)
    a = r.get("adapted") or {}
    return {"ppl": r["perplexity"], "net": r.get("network", r)["perplexity"], "wall": wall,
            "steps": summary["steps"], "stopped": summary["stopped"],
            "adapted": a.get("perplexity"),
            "cache": (a.get("cache_only") or {}).get("perplexity"),
            "dynamic": (a.get("dynamic_only") or {}).get("perplexity")}  # fmt: skip


def count_model(corpus: Path, order: int = 8) -> float:
    """Held-out perplexity of the Kneser-Ney count model alone, on charlm's split."""
    sys.path.insert(0, str(ROOT))
    from charlm.data.corpus import read_corpus, split_text
    from charlm.data.vocab import Vocab
    from charlm.scoring.kneser_ney import KneserNey

    train_text, val_text = split_text(read_corpus(str(corpus)).text, 0.1)
    v = Vocab.build(train_text)
    kn = KneserNey(v.encode(train_text).tolist(), len(v), order)
    return math.exp(-kn.log_probs(v.encode(val_text).tolist()).mean())


def previous_tree(rev: str, tmp: Path) -> Path:
    tree = tmp / "previous"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), rev], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    return tree


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--budgets", default="120", help="comma-separated --max-time values")
    p.add_argument("--corpora", default="jay,kjv11,tang")
    p.add_argument("--previous", metavar="REV", help="also train this commit's defaults")
    p.add_argument("--only", default="new,previous,lstm,kn",
                   help="which rows: new, previous, lstm, kn")  # fmt: skip
    p.add_argument("--extra", default="", help="options added to the new defaults' run")
    args = p.parse_args()
    rows = set(args.only.split(","))
    budgets = [float(b) for b in args.budgets.split(",")]
    extra = shlex.split(args.extra)
    print(
        "| corpus | budget | recipe | held-out ppl | nats/char | network alone | adapted "
        "(cache + dynamic) | cache alone | dynamic alone | steps | stopped | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = previous_tree(args.previous, tmp) if args.previous and "previous" in rows else None
        try:
            for name in args.corpora.split(","):
                corpus = corpus_path(name, tmp)
                if "kn" in rows:
                    ppl = count_model(corpus)
                    print(f"| {name} | - | KN-8 alone | {ppl:.2f} | {math.log(ppl):.4f} | - | - "
                          "| - | - | - | - | - |", flush=True)  # fmt: skip
                for seconds in budgets:
                    runs = [("new" + (f" {args.extra}" if extra else ""), ROOT, extra, "new"),
                            ("previous", old, [], "previous"),
                            ("LSTM-512", ROOT, PLAIN_LSTM_512, "lstm")]  # fmt: skip
                    for label, tree, opts, key in runs:
                        if key not in rows or tree is None:
                            continue
                        run = f"{Path(name).stem}-{key}-{seconds:.0f}"  # a path: its stem
                        r = train(tree, corpus, tmp / "ck", run, seconds, opts)
                        fig = {k: "-" if v is None else f"{v:.2f}" for k, v in r.items()
                               if not isinstance(v, str)}  # fmt: skip
                        print(f"| {name} | {seconds:.0f} s | {label} | {r['ppl']:.2f} | "
                              f"{math.log(r['ppl']):.4f} | {fig['net']} | {fig['adapted']} | "
                              f"{fig['cache']} | {fig['dynamic']} | {r['steps']} | "
                              f"{r['stopped']} | {r['wall']:.0f} s |", flush=True)  # fmt: skip
        finally:
            if old is not None:
                subprocess.run(["git", "worktree", "remove", "-f", str(old)], cwd=ROOT,
                               check=False, capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()
