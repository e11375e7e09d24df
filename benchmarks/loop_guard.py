#!/usr/bin/env python3
"""How often the loop guard would bar what real text writes next.

    .venv/bin/python benchmarks/loop_guard.py                      # Jay Chou and the KJV
    .venv/bin/python benchmarks/loop_guard.py --corpus my.txt --lines 5000

For each corpus, every line (or an even sample of --lines of them) is read one character at
a time, as generation writes it: a line counts as barred when the guard, given the line so
far, forbids the character that really comes next. Both rules are measured: the one the
corpus's language gets (words for English, characters otherwise) and the character rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlm.data.corpus import read_corpus  # noqa: E402
from charlm.data.vocab import Vocab  # noqa: E402
from charlm.generation.form.lexicon import language_of  # noqa: E402
from charlm.generation.repeats import RepeatGuard, WordRepeatGuard, closes  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpora"
DEFAULT = [SHARED / "jaychou_lyrics.txt.zip", SHARED / "kjv.txt.zip"]


def barred_by_chars(guard: RepeatGuard, ids: list[int], k: int) -> bool:
    """Whether the character rule forbids ids[k] after ids[:k]."""
    units = [i for i in ids[:k] if i not in guard.spaces]
    if ids[k] in guard.spaces:
        return False
    return any(closes(units, n) == ids[k] for n in range(1, len(units) // 2 + 2))


def measure(path: Path, n_lines: int) -> tuple[str, int, float, float]:
    text = read_corpus(str(path)).text
    lines = [ln for ln in text.split("\n") if ln.strip()]
    lines = lines[:: max(1, len(lines) // n_lines)] if n_lines else lines
    vocab = Vocab.build(text)
    lang = language_of(vocab)
    words, chars = WordRepeatGuard(vocab), RepeatGuard(vocab)
    by_words = by_chars = 0
    for line in lines:
        ids = [int(i) for i in vocab.encode(line)]
        by_chars += any(barred_by_chars(chars, ids, k) for k in range(1, len(ids)))
        if lang == "en":
            by_words += any(ids[k] in words.barred(line[:k]) for k in range(1, len(ids)))
    word_share = 100 * by_words / len(lines) if lang == "en" else float("nan")
    return lang, len(lines), word_share, 100 * by_chars / len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, action="append", help="default: Jay Chou and KJV")
    ap.add_argument("--lines", type=int, default=3000, help="an even sample (0 = every line)")
    a = ap.parse_args()
    print("| corpus | language | lines | barred by the word rule | by the character rule |")
    print("|---|---|---|---|---|")
    for path in a.corpus or DEFAULT:
        lang, n, w, c = measure(path, a.lines)
        word = "-" if lang != "en" else f"{w:.2f} %"
        print(f"| {path.name} | {lang} | {n:,} | {word} | {c:.2f} % |")


if __name__ == "__main__":
    main()
