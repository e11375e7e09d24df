"""English rhyme by pronunciation, from the CMU Pronouncing Dictionary.

A word's rhyme is its phones from the last stressed vowel to the end ("night", "delight" and
"tonight" all end in AY T): what perfect rhyme compares. The table ships with charlm
(assets/en_rhymes.txt.gz, 125k words, 0.5 MB; built by base/build_en_rhymes.py from CMU's BSD
-licensed data; see assets/README.md). As for Chinese 多音字, a word fills a rhyme slot only if
every pronunciation it has rhymes the same way ("read" IY D / EH D fills none); `scan` reads a
word by its first (commonest) pronunciation. A word the dictionary lacks has no rhyme, but
the sung forms "lovin'" and "'cause" are looked up as "loving" and "cause"."""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from importlib import resources

WORD = re.compile(r"[A-Za-z][A-Za-z']*")


@lru_cache(maxsize=1)
def table() -> dict[str, tuple[str, ...]]:
    """Word (lower case) -> its distinct rhymes, commonest first (0.2 s, once)."""
    raw = resources.files("charlm.assets").joinpath("en_rhymes.txt.gz").read_bytes()
    out: dict[str, tuple[str, ...]] = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        rhymes, words = line.split("\t")
        value = tuple(rhymes.split("|"))
        for w in words.split(" "):
            out[w] = value
    return out


def rhymes_of(word: str) -> tuple[str, ...]:
    """The rhymes of a word's pronunciations (none when the dictionary lacks it)."""
    t = table()
    w = word.lower()
    sung = w[:-1] + "g" if w.endswith("in'") else ""  # lovin' is loving, not the name Lovin
    for form in (sung, w, w.strip("'")):
        if form and form in t:
            return t[form]
    return ()


def strict_rhyme(word: str) -> str | None:
    """The rhyme every pronunciation of `word` has; None when they differ or it has none."""
    r = rhymes_of(word)
    return r[0] if len(r) == 1 else None


def read_rhyme(word: str) -> str | None:
    """The rhyme a reader hears: the first (commonest) pronunciation's."""
    r = rhymes_of(word)
    return r[0] if r else None


def last_word(line: str) -> str | None:
    """The line's last word (letters and apostrophes), punctuation after it ignored."""
    words = WORD.findall(line)
    return words[-1].strip("'") or None if words else None


def rhyme_named(name: str) -> str | None:
    """--rhyme-with for English: a word ("night") or a rhyme as phones ("AY T")."""
    if WORD.fullmatch(name):
        return strict_rhyme(name)
    phones = " ".join(name.upper().split())
    known = {r for rs in table().values() for r in rs}
    return phones if phones in known else None


def is_english_line(line: str) -> bool:
    """A line whose end is read as English: it has a Latin letter and no Chinese character."""
    from charlm.generation.form.layout import is_cjk

    return bool(WORD.search(line)) and not any(is_cjk(c) for c in line)
