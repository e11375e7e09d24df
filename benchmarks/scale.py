#!/usr/bin/env python3
"""charlm at scale: what a user waits for and how much memory it takes, per corpus.

    .venv/bin/python benchmarks/scale.py                     # jaychou and the Tang corpus
    .venv/bin/python benchmarks/scale.py --train-seconds 120 --corpus PATH ...

For each corpus: the Kneser-Ney count model's build time and peak memory (array tables; the
first dict-based version beside it where it finishes in reasonable time), then `charlm train`
with defaults and --max-time (wall time of the whole command, peak memory), the checkpoint's
size, and `charlm generate --lines 4` (time to the first character, wall time, peak memory).
Each command runs in its own process under /usr/bin/time, so peak memory is that process's.
"""

from __future__ import annotations

import argparse
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
from charlm.corpus import read_corpus, split_text
from charlm.vocab import Vocab
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
    from charlm.kneser_ney import KneserNey as KN
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


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", action="append", type=Path)
    p.add_argument("--train-seconds", type=float, default=60)
    p.add_argument("--reference-max-chars", type=int, default=1_000_000,
                   help="run the dict reference only below this many characters")  # fmt: skip
    args = p.parse_args()
    for corpus in args.corpus or CORPORA:
        if not corpus.exists():
            print(f"{corpus}: not found, skipped", file=sys.stderr)
            continue
        print(f"\n### {corpus.name}\n")
        print("| what | time | peak memory | note |")
        print("|---|---|---|---|")
        print(kn_row(corpus, False, 600))
        size = corpus.stat().st_size
        if size < args.reference_max_chars * 3:  # ~3 bytes a CJK character
            print(kn_row(corpus, True, 600))
        with tempfile.TemporaryDirectory() as ck:
            secs = str(args.train_seconds)
            cmd = [PY, "-m", "charlm", "train", "--corpus", str(corpus), "--run", "s",
                   "--checkpoint-dir", ck, "--max-time", secs, "--seed", "1"]  # fmt: skip
            t = timed(cmd, args.train_seconds * 4 + 600)
            header = next((ln for ln in t["stderr"].splitlines() if "held-out" in ln), "")
            best = next((ln for ln in t["stderr"].splitlines() if "best held-out" in ln), "")
            print(f"| charlm train --max-time {args.train_seconds:.0f} | {t['wall']:.1f} s | "
                  f"{t['peak_mb']:,.0f} MB | {header.strip()[:140]} {best.strip()} |")  # fmt: skip
            pt = Path(ck) / "s" / "best.pt"
            if pt.exists():
                print(f"| best.pt size | | {pt.stat().st_size / 1e6:,.1f} MB | |")
                g = timed([PY, "-m", "charlm", "generate", "--checkpoint-dir", ck, "--lines", "4",
                           "--seed", "1"], 600, first_byte=True)  # fmt: skip
                print(f"| charlm generate --lines 4 | first char {g['first']:.2f} s, all "
                      f"{g['wall']:.2f} s | {g['peak_mb']:,.0f} MB | |")  # fmt: skip


if __name__ == "__main__":
    main()
