#!/usr/bin/env python3
"""charlm at scale: what a user waits for and how much memory it takes, per corpus.

    .venv/bin/python benchmarks/scale.py                     # jaychou and the Tang corpus
    .venv/bin/python benchmarks/scale.py --train-seconds 120 600 --compare --big-mb 200
    .venv/bin/python benchmarks/scale.py --train-seconds 120 --corpus PATH ...

For each corpus: the Kneser-Ney count model's build time and peak memory (array tables; the
first dict-based version beside it where it finishes in reasonable time), preparation (reading,
vocabulary, ids, the model choice) the first time and again with the ids cache, then `charlm
train` with defaults and each --max-time (wall time of the whole command, peak memory, model,
best held-out perplexity; with --compare a plain tied LSTM-512 beside it), the checkpoint's
size, and `charlm generate --lines 4` (time to the first character, wall time, peak memory).
Each command runs in its own process under /usr/bin/time, so peak memory is that process's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
CORPORA = [SHARED / "jaychou_lyrics.txt.zip", SHARED / "quantangshi.txt.zip"]
PY = sys.executable

KN_SCRIPT = """
import resource, sys, time
sys.path.insert(0, {root!r})
from charlm.data.corpus import read_corpus, split_text
from charlm.data.vocab import Vocab
train, val = split_text(read_corpus({corpus!r}).text, 0.1)
vocab = Vocab.build(train)
ids, held = vocab.encode(train), vocab.encode(val)
t0 = time.perf_counter()
if {reference!r}:
    sys.path.insert(0, {root!r} + "/tests")
    from kn_reference import ReferenceKneserNey as KN
    kn = KN(ids.tolist(), len(vocab), 8)
    lp = kn.log_probs(held.tolist())
else:
    from charlm.scoring.kneser_ney import KneserNey as KN
    kn = KN(ids, len(vocab), 8)
    lp = kn.log_probs(held)
import math
print(len(train), time.perf_counter() - t0, math.exp(-lp.mean()))
"""


def timed(cmd: list[str], timeout: float, first_byte: bool = False) -> dict:
    """Run under /usr/bin/time; wall seconds, peak RSS (MB), stdout, and the seconds to the
    first byte of stdout when asked."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-f", "%M %e", "-o", tf.name, *cmd]
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        first = None
        out = b""
        if first_byte:
            b = proc.stdout.read(1)
            first = time.perf_counter() - t0
            out = b
        rest, err = proc.communicate(timeout=timeout)
        wall = time.perf_counter() - t0
        rss_kb, _ = Path(tf.name).read_text().split()[-2:]
    return {
        "wall": wall,
        "peak_mb": int(rss_kb) / 1024,
        "stdout": (out + rest).decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
        "first": first,
        "rc": proc.returncode,
    }


def kn_row(corpus: Path, reference: bool, timeout: float) -> str:
    code = KN_SCRIPT.format(root=str(ROOT), corpus=str(corpus), reference=reference)
    try:
        r = timed([PY, "-c", code], timeout)
    except subprocess.TimeoutExpired:
        return f"| {'dict (first version)' if reference else 'arrays'} | > {timeout:.0f} s | | |"
    n, secs, ppl = r["stdout"].split()
    name = "dict (first version)" if reference else "arrays"
    return (
        f"| count model ({int(n):,} chars), {name} | {float(secs):.2f} s | "
        f"{r['peak_mb']:,.0f} MB | held-out ppl {float(ppl):.1f} |"
    )


PREP_SCRIPT = """
import resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import torch
from pathlib import Path
from charlm.training.options import TrainOptions
from charlm.training.setup import prepare
t1 = time.perf_counter()
opts = TrainOptions(corpus={corpus!r}, max_time=600, run={run!r}).fill({{}})
s = prepare(opts, Path({ck!r}), torch.device("cpu"), lambda m: None)
print(time.perf_counter() - t1, len(s.data.train_ids), s.model_config.layers, s.model_config.hidden)
"""

PLAIN_LSTM_512 = ["--cell", "lstm", "--hidden", "512", "--layers", "1", "--embed", "128",
                  "--dropout", "0.2", "--seq-len", "128", "--batch-size", "32",
                  "--kn-order", "0"]  # fmt: skip


def big_corpus(folder: Path, mb: int) -> Path:
    """The Tang poems' lines, shuffled copies concatenated to `mb` MB (never committed)."""
    import random

    sys.path.insert(0, str(ROOT))
    from charlm.data.corpus import read_corpus

    lines = read_corpus(str(SHARED / "quantangshi.txt.zip")).text.split("\n")
    rng, out, n = random.Random(0), folder / f"tang_{mb}mb.txt", 0
    with open(out, "w", encoding="utf-8") as fh:
        while n < mb * 1_000_000:
            rng.shuffle(lines)
            chunk = "\n".join(lines) + "\n"
            fh.write(chunk)
            n += len(chunk.encode())
    return out


def best_ppl(run_dir: Path) -> str:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    vals = [r["val_ppl"] for r in rows if r.get("val_ppl") is not None]
    nets = [r["val_ppl_net"] for r in rows if r.get("val_ppl_net") is not None]
    net = f" (network alone {min(nets):.1f})" if nets else ""
    return f"best held-out ppl {min(vals):.1f}{net}" if vals else "no held-out score"


def train_row(corpus: Path, ck: str, run: str, seconds: float, extra: list[str], name: str):
    cmd = [PY, "-m", "charlm", "train", "--corpus", str(corpus), "--run", run,
           "--checkpoint-dir", ck, "--max-time", str(seconds), "--seed", "1", *extra]  # fmt: skip
    t = timed(cmd, seconds * 4 + 600)
    arch = re.search(r"(rnn|gru|lstm) \d+x\d+", t["stderr"])  # the run header names it
    print(f"| {name} `--max-time {seconds:.0f}` | {t['wall']:.1f} s | {t['peak_mb']:,.0f} MB | "
          f"{arch.group(0) if arch else '?'}; {best_ppl(Path(ck) / run)} |")  # fmt: skip


def corpus_rows(corpus: Path, args: argparse.Namespace) -> None:
    print(f"\n### {corpus.name} ({corpus.stat().st_size / 1e6:,.1f} MB)\n")
    print("| what | time | peak memory | note |")
    print("|---|---|---|---|")
    size = corpus.stat().st_size
    if size < 30_000_000:  # the count model is built for corpora under 5M characters
        print(kn_row(corpus, False, 600))
    if size < args.reference_max_chars * 3:  # ~3 bytes a CJK character
        print(kn_row(corpus, True, 600))
    with tempfile.TemporaryDirectory() as ck:
        for attempt in ("first time", "second time, ids cache"):
            code = PREP_SCRIPT.format(root=str(ROOT), corpus=str(corpus), run=f"p{len(attempt)}",
                                      ck=ck)  # fmt: skip
            r = timed([PY, "-c", code], 900)
            secs, n, layers, hidden = r["stdout"].split()
            print(f"| prepare ({attempt}): read, vocabulary, ids, model choice | "
                  f"{float(secs):.1f} s | {r['peak_mb']:,.0f} MB | {int(n):,} training chars; "
                  f"{layers}x{hidden} for --max-time 600 |")  # fmt: skip
        for seconds in args.train_seconds:
            train_row(corpus, ck, f"d{seconds:.0f}", seconds, [], "defaults")
            if args.compare:
                train_row(corpus, ck, f"l{seconds:.0f}", seconds, PLAIN_LSTM_512, "plain LSTM-512")
        pt = Path(ck) / f"d{args.train_seconds[0]:.0f}" / "best.pt"
        if pt.exists():
            print(f"| best.pt size | | {pt.stat().st_size / 1e6:,.1f} MB | |")
            g = timed([PY, "-m", "charlm", "generate", "--checkpoint", str(pt), "--lines", "4",
                       "--seed", "1"], 600, first_byte=True)  # fmt: skip
            print(f"| charlm generate --lines 4 | first char {g['first']:.2f} s, all "
                  f"{g['wall']:.2f} s | {g['peak_mb']:,.0f} MB | |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", action="append", type=Path)
    p.add_argument("--train-seconds", type=float, nargs="+", default=[60])
    p.add_argument("--compare", action="store_true",
                   help="also a plain tied LSTM-512 (no count model) in each budget")  # fmt: skip
    p.add_argument("--big-mb", type=int, default=0,
                   help="also a corpus of this many MB (shuffled Tang lines, in /tmp)")  # fmt: skip
    p.add_argument("--reference-max-chars", type=int, default=1_000_000,
                   help="run the dict reference only below this many characters")  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpora = list(args.corpus or CORPORA)
        if args.big_mb:
            corpora.append(big_corpus(Path(tmp), args.big_mb))
        for corpus in corpora:
            if not corpus.exists():
                print(f"{corpus}: not found, skipped", file=sys.stderr)
                continue
            corpus_rows(corpus, args)


if __name__ == "__main__":
    main()
