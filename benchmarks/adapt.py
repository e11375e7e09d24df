#!/usr/bin/env python3
"""Static against adapted held-out perplexity (the song cache, `charlm evaluate --adapt`).

    .venv/bin/python benchmarks/adapt.py                          # train 120 s on each corpus
    .venv/bin/python benchmarks/adapt.py --train-seconds 600
    .venv/bin/python benchmarks/adapt.py --checkpoint jay=PATH/best.pt --checkpoint tang=...

For each corpus (jaychou and the Tang poems by default): `charlm train` with defaults and
--max-time (or a checkpoint you give), then `charlm evaluate --adapt --baseline kn --json` on
the whole held-out split, and the cache's own cost per 1,000 characters scored (timed
in-process on the held-out ids, best of 3).
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
SHARED = ROOT.parent / "shared" / "corpora"
CORPORA = {"jaychou": SHARED / "jaychou_lyrics.txt.zip", "tang": SHARED / "quantangshi.txt.zip"}
PY = sys.executable


def cache_ms_per_1000(pt: Path) -> tuple[float, int]:
    """Milliseconds the song cache adds per 1,000 held-out characters, and how many it scored."""
    sys.path.insert(0, str(ROOT))
    import torch

    from charlm.data.corpus import CorpusOptions, read_corpus
    from charlm.data.ids_cache import encode_text
    from charlm.store import checkpoint

    payload = checkpoint.load(pt)
    _, vocab, _ = checkpoint.restore_model(payload, str(pt), torch.device("cpu"))
    mixture = checkpoint.restore_mixture(payload, len(vocab), str(pt))
    stored = payload["corpus"]
    corpus = read_corpus(stored["source"], CorpusOptions(**stored["options"]))
    enc = encode_text(corpus.text, corpus.fingerprint, stored["val_fraction"], None, vocab)
    val = torch.from_numpy(enc.ids[enc.n_train :].astype("int64"))
    static = torch.zeros(len(val) - 1, dtype=torch.float64)
    best = min(_timed(lambda: mixture.adaptation.mix(static, val)) for _ in range(3))
    return best * 1000 / max(len(val) - 1, 1) * 1000, len(val) - 1


def repeat_share(texts: list[str], window: int = 15) -> float:
    """Share of non-blank lines equal to one of the `window` lines before them."""
    hits = total = 0
    for text in texts:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line.strip():
                total += 1
                hits += line in lines[max(0, i - window) : i]
    return hits / max(total, 1)


def generated(pt: Path, adapt: bool, samples: int = 16) -> list[str]:
    cmd = [PY, "-m", "charlm", "generate", "--checkpoint", str(pt), "--num-samples",
           str(samples), "--lines", "40", "--length", "800", "--seed", "1", "--json",
           "--quiet", "--adapt" if adapt else "--no-adapt"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(x)["text"] for x in out.splitlines()]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train-seconds", type=float, default=120)
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="use this checkpoint for corpus NAME instead of training")  # fmt: skip
    args = p.parse_args()
    given = dict(c.split("=", 1) for c in args.checkpoint)
    print(
        "| corpus | static (what ships) | adapted (song cache) | network alone | "
        "Kneser-Ney 8-gram | cache resets at blank lines | cache cost per 1,000 chars |"
    )
    print("|---|---|---|---|---|---|---|")
    repeats = []
    with tempfile.TemporaryDirectory() as ck:
        for name, corpus in CORPORA.items():
            if not corpus.exists():
                print(f"{corpus}: not found, skipped", file=sys.stderr)
                continue
            pt = Path(given[name]) if name in given else Path(ck) / name / "best.pt"
            if name not in given:
                subprocess.run([PY, "-m", "charlm", "train", "--corpus", str(corpus), "--run",
                                name, "--checkpoint-dir", ck, "--max-time",
                                str(args.train_seconds), "--seed", "1", "--quiet"],
                               cwd=ROOT, check=True)  # fmt: skip
            out = subprocess.run([PY, "-m", "charlm", "evaluate", "--checkpoint", str(pt),
                                  "--adapt", "--baseline", "kn", "--json", "--quiet"],
                                 cwd=ROOT, check=True, capture_output=True, text=True)  # fmt: skip
            r = json.loads(out.stdout)
            ms, n = cache_ms_per_1000(pt)
            resets = "yes" if r["adapted"]["reset_ids"] else "no"
            print(
                f"| {name} ({n:,} held-out chars) | {r['perplexity']:.1f} | "
                f"**{r['adapted']['perplexity']:.1f}** | {r['network']['perplexity']:.1f} | "
                f"{r['baseline_kn']['perplexity']:.1f} | {resets} | {ms:.2f} ms |"
            )
            sys.path.insert(0, str(ROOT))
            from charlm.data.corpus import read_corpus, split_text

            held_out = split_text(read_corpus(str(corpus)).text, 0.1)[1]
            repeats.append((name, repeat_share([held_out]), repeat_share(generated(pt, False)),
                            repeat_share(generated(pt, True))))  # fmt: skip
    print("\nShare of lines repeating one of the 15 before them (16 samples of 40 lines, seed 1):")
    print("\n| corpus | held-out text | generated, static | generated, adapted |")
    print("|---|---|---|---|")
    for name, real, static, adapted in repeats:
        print(f"| {name} | {real:.1%} | {static:.1%} | {adapted:.1%} |")


if __name__ == "__main__":
    main()
