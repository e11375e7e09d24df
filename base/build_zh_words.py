#!/usr/bin/env python3
"""Rebuild charlm's Chinese word list (charlm/assets/zh_words.txt.gz) from jieba's dictionary.

    pip download jieba==0.42.1 --no-deps -d /tmp/jb      # PyPI: MIT, (c) 2013 Sun Junyi
    python3 base/build_zh_words.py /tmp/jb/jieba-0.42.1.tar.gz

jieba's `dict.txt` lists 349,046 modern Chinese words (simplified script, some traditional),
each with a frequency counted on its authors' corpora and a part of speech: `word freq pos`.
Kept: the words written wholly in CJK ideographs (the list's Latin, digit and mixed entries go)
with their frequencies, one `word<TAB>freq` a line in the dictionary's order. What charlm makes
of it (the lexicon count model, scoring/lexicon.py) is in README.md, "Starting from a base".
"""

from __future__ import annotations

import argparse
import gzip
import re
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "charlm" / "assets" / "zh_words.txt.gz"
MEMBER = "jieba-0.42.1/jieba/dict.txt"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdist", type=Path, help="jieba-0.42.1.tar.gz")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tarfile.open(args.sdist) as tar:
        raw = tar.extractfile(MEMBER).read().decode("utf-8")
    kept = []
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) >= 2 and CJK.fullmatch(parts[0]) and parts[1].isdigit():
            kept.append(f"{parts[0]}\t{int(parts[1])}")
    # mtime 0: the same input gives the same bytes
    with open(args.out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(kept) + "\n").encode("utf-8"))
    print(f"{args.out}: {len(kept):,} words of {len(raw.splitlines()):,}")


if __name__ == "__main__":
    main()
