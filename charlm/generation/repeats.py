"""The loop guard: no loop inside a line, counted in the units a language repeats.

A Chinese line repeats characters (啦啦啦, 每天每天); an English line repeats words (la la la,
yeah yeah yeah, merrily merrily). The same rule holds for both, over its own unit: a unit
may stand 3 times in a row, a phrase of 2-4 units twice, a longer phrase once (a second copy
in a row is a loop). Counted in characters with the spaces removed, English refrains read
as loops: "la la la" is a two-letter phrase three times, "merrily, merrily" a long one twice.

Chinese (`RepeatGuard`): spaces do not separate the copies. Measured on the Jay Chou lyrics
with spaces removed, 0.8 %, 0.9 % and 0.8 % of real lines break each part (the Tang poems
0.01 % or less): the guard bites where real lyrics almost never go, and where a model stuck
in a loop always does.

English (`WordRepeatGuard`): words compared in lower case without punctuation; at the start
of a word that would complete one copy too many, the word's first letter is barred (the
word may not be known yet, and barring its end instead would leave a garbage word). Inside a
word, no character 4 times in a row. Measured on the King James Bible (every 10th verse):
see README ("Generation").
"""

from __future__ import annotations

import re

import torch

from charlm.data.vocab import Vocab
from charlm.generation.processor import Processor, StepContext

RUN = 3  # copies in a row a line may hold of one unit
SHORT, SHORT_RUN = 4, 2  # of a phrase of 2..SHORT units; longer ones: 1
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # a word: letters and digits, inner apostrophes


def allowed_copies(n: int) -> int:
    """Copies in a row a line may hold of a phrase of n units."""
    return RUN if n == 1 else SHORT_RUN if n <= SHORT else 1


def closes(units: list, n: int) -> object | None:
    """The unit (an id, a word) that would complete one copy too many of a phrase of n
    units, if any."""
    span = (allowed_copies(n) + 1) * n - 1  # what must already stand: all copies but the last
    if len(units) < span:
        return None
    # period n over the last `span` units, checked from the end without copying: in a line
    # that does not loop the first comparison already differs (this runs every step)
    for j in range(1, span - n + 1):
        if units[-j] != units[-j - n]:
            return None
    return units[-n]  # the next unit of the period


class RepeatGuard(Processor):
    """Characters as the units; spaces do not separate the copies."""

    looks_back = 1

    def __init__(self, vocab: Vocab) -> None:
        self.spaces = {i for i in (vocab.id_of(c) for c in " \u3000\t") if i is not None}

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for b, line in enumerate(ctx.line):
            ids = [i for i in line if i not in self.spaces]
            bad = {i for n in range(1, len(ids) // 2 + 2) if (i := closes(ids, n)) is not None}
            if bad and len(bad) < logits.shape[1]:
                logits[b, list(bad)] = float("-inf")
        return logits


class WordRepeatGuard(Processor):
    """Words as the units (a language that separates its words with spaces)."""

    looks_back = 1

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.cases: dict[str, list[int]] = {}  # a character in lower case -> its ids, any case
        for i, t in enumerate(vocab.tokens):
            if len(t) == 1:
                self.cases.setdefault(t.lower(), []).append(i)

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for b, line in enumerate(ctx.line):
            bad = self.barred(self.vocab.decode(line))
            if bad and len(bad) < logits.shape[1]:
                logits[b, list(bad)] = float("-inf")
        return logits

    def barred(self, text: str) -> set[int]:
        """The ids the line may not write next."""
        bad: set[int] = set()
        tail = text[-RUN:].lower()
        if len(tail) == RUN and len(set(tail)) == 1 and not tail[0].isspace():  # not a 4th
            bad.update(self.cases.get(tail[0], ()))
        if text and (text[-1].isalnum() or text[-1] in "'_"):
            return bad  # inside a word: it is judged where the next one starts
        words = WORD.findall(text.lower())
        for n in range(1, len(words) // 2 + 2):
            word = closes(words, n)
            if word is not None:
                bad.update(self.cases.get(word[0], ()))
        return bad


def word_ids(vocab: Vocab) -> set[int]:
    """The ids of the characters words are made of (letters, digits, the apostrophe)."""
    return {i for i, t in enumerate(vocab.tokens) if len(t) == 1 and (t.isalnum() or t == "'")}


def repeat_guard(vocab: Vocab, language: str) -> RepeatGuard | WordRepeatGuard:
    """The guard for a model's language ("en": words; otherwise characters)."""
    return WordRepeatGuard(vocab) if language == "en" else RepeatGuard(vocab)
