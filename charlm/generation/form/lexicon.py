"""What can end a rhyming line, for one model: an English model's words (the dictionary's
words its corpus had, by rhyme) or a Chinese model's characters (by rhyme group).

The words are read against the count model (corpus_words): a word of the CMU dictionary
counts when the n-grams of it standing as a word were seen, so a rhyme is never spelled out
of the dictionary's names and rare words ("truesdell", "donahoo") or a fragment ("t")."""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

import numpy as np

from charlm.data.vocab import Vocab
from charlm.generation.form import english
from charlm.generation.form.layout import is_cjk
from charlm.generation.form.rhyme import RhymeBook, VocabRhymes


@dataclass(frozen=True)
class Lexicon:
    """What can end a line, for one vocabulary: rhyme -> the units it can write (sorted)."""

    language: str  # "en": units are words; "zh": units are characters
    groups: dict[str, list[str]]
    book: RhymeBook | None = None

    def strict(self, unit: str) -> str | None:
        if self.language == "en":
            return english.strict_rhyme(unit)
        return self.book.strict_group(unit) if self.book else None

    def last_unit(self, line: str) -> str | None:
        if self.language == "en":
            word = english.last_word(line)
            return word.lower() if word else None
        return next((c for c in reversed(line) if is_cjk(c)), None)

    def in_unit(self, ch: str) -> bool:
        """A character that continues the unit before it (a word's letters)."""
        return self.language == "en" and ch.isascii() and (ch.isalpha() or ch == "'")

    def named(self, name: str) -> str | None:
        """--rhyme-with: a rhyme group by name, word or character."""
        if self.language == "en":
            return english.rhyme_named(name)
        return self.book.group_named(name) if self.book else None


_LANGUAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # vocab -> language
_LEXICONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # counts -> {key: Lexicon}


def lexicon_for(vocab: Vocab, book: RhymeBook, counts=None) -> Lexicon:
    """lexicon_of, kept while its count model (or vocabulary) lives: a model that writes
    many songs in one process reads the dictionary against its corpus once."""
    owner = counts if counts is not None else vocab
    key = (book.table, tuple(vocab.tokens))
    known = _LEXICONS.setdefault(owner, {})
    if key not in known:
        known[key] = lexicon_of(vocab, book, counts)
    return known[key]


def language_of(vocab: Vocab) -> str:
    """ "zh" when the vocabulary has more Chinese characters than Latin letters, else "en".
    Read once per vocabulary in a process (20 ms for 9.4k characters, at every generate)."""
    if vocab not in _LANGUAGES:
        cjk = sum(len(t) == 1 and is_cjk(t) for t in vocab.tokens)
        latin = sum(t.isascii() and t.isalpha() for t in vocab.tokens)
        _LANGUAGES[vocab] = "zh" if cjk > latin else "en"
    return _LANGUAGES[vocab]


def lexicon_of(vocab: Vocab, book: RhymeBook, counts=None) -> Lexicon:
    """Chinese when the vocabulary has more Chinese characters than Latin letters. An English
    model's words are the dictionary's words it can spell; with `counts` (the count model),
    only those its corpus had (else a rhyme is spelled out of the dictionary's 125k names and
    rare words: "truesdell", "donahoo")."""
    tokens = list(vocab.tokens)
    if language_of(vocab) == "zh":
        rhymes = VocabRhymes.of(tokens, book)
        groups: dict[str, list[str]] = {}
        for t, g, zh in zip(tokens, rhymes.group_ids, rhymes.chinese, strict=True):
            if g >= 0 and zh:
                groups.setdefault(book.groups[g], []).append(t)
        return Lexicon("zh", {g: sorted(v) for g, v in groups.items()}, book)
    chars = {t for t in tokens if len(t) == 1}
    words = [w for w, r in english.table().items()  # eyes' is eyes, for a reader
             if len(r) == 1 and set(w) <= chars and not w.endswith("'")]  # fmt: skip
    if counts is not None:
        words = [w for w, ok in zip(words, corpus_words(words, vocab, counts), strict=True) if ok]
    en: dict[str, list[str]] = {}
    for w in words:
        en.setdefault(english.table()[w][0], []).append(w)
    return Lexicon("en", {g: sorted(v) for g, v in en.items()})


def corpus_words(words: list[str], vocab: Vocab, counts) -> np.ndarray:
    """(len(words),) bool: the word stood in the counted text as a word: its start after a
    space or a line break (as written, or capitalised), its end before one of them or a comma
    or full stop, and each stretch of it as long as the model's order between them, all seen
    as n-grams ("highlight" is not a word of a text that has "high" and "light"); a word short
    enough, whole between the two ("t" is not a word of "it is"). Batched by gram length."""
    order, k = counts.order, counts.order - 1
    lens = np.array([len(w) for w in words], dtype=np.int64)
    flat = vocab.encode("".join(words)).astype(np.int64)  # (sum of lengths,)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    upper = np.arange(len(vocab), dtype=np.int64)  # id -> the id of its capital
    for i, t in enumerate(vocab.tokens):
        if len(t) == 1 and t.upper() != t and t.upper() in vocab:
            upper[i] = vocab.id_of(t.upper())
    before = [vocab.id_of(c) for c in (" ", "\n") if c in vocab]
    after = [vocab.id_of(c) for c in (" ", "\n", ",", ".") if c in vocab]

    def spelled(rows: np.ndarray, start: int | np.ndarray, n: int) -> np.ndarray:
        return flat[offs[rows, None] + np.reshape(start, (-1, 1)) + np.arange(n)]  # (R, n)

    def capital(ids: np.ndarray) -> np.ndarray:
        out = ids.copy()
        out[:, 0] = upper[out[:, 0]]
        return out

    # Each test only on the words still standing: most of the dictionary falls at the first.
    alive = np.ones(len(words), dtype=bool)
    for test in ("start", "end", "whole", "inside"):
        passed = np.zeros(len(words), dtype=bool)
        for n in np.unique(lens[alive]):
            rows = np.flatnonzero(alive & (lens == n))
            col = np.ones((len(rows), 1), dtype=np.int64)
            if test == "start":
                head = spelled(rows, 0, min(n, k))
                for c in before:
                    for form in (head, capital(head)):
                        passed[rows] |= counts.seen(np.hstack([col * c, form]))
            elif test == "end":
                tail = spelled(rows, n - min(n, k), min(n, k))
                for c in after:
                    passed[rows] |= counts.seen(np.hstack([tail, col * c]))
            elif test == "whole" and n <= order - 2:  # short: seen whole, between the two
                word = spelled(rows, 0, n)
                for c, d in itertools.product(before, after):
                    for form in (word, capital(word)):
                        passed[rows] |= counts.seen(np.hstack([col * c, form, col * d]))
            elif test == "inside" and n >= order:  # long: every stretch of `order` seen
                word, ok = spelled(rows, 0, n), np.ones(len(rows), dtype=bool)
                for i in range(n - order + 1):
                    ok &= counts.seen(word[:, i : i + order])
                passed[rows] = ok
            else:
                passed[rows] = True
        alive &= passed
    return alive
