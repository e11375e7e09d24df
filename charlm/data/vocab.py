"""Deterministic character vocabulary with a reserved unknown symbol at id 0.

Same text -> same ids, on every run and machine: characters are ordered by descending count,
ties broken by code point. The vocabulary travels inside every checkpoint as `list[str]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from charlm.errors import CheckpointError

UNK = "<unk>"  # id 0; never a single character, so it cannot collide with real text
UNK_ID = 0
UNK_DISPLAY = "\ufffd"  # how an unknown id is written back out


CODEPOINTS = 0x110000  # every Unicode code point: a count or a lookup is one flat array
CHUNK_CHARS = 1 << 22  # 4M characters at a time: 16 MB of code points, whatever the corpus


def _codepoints(text: str) -> np.ndarray:
    # UTF-32 gives one uint32 per character at C speed: no Python loop over a 200 MB corpus.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def chunk_spans(start: int, stop: int) -> Iterator[tuple[int, int]]:
    """[start, stop) in CHUNK_CHARS pieces: (i, j) pairs."""
    for i in range(start, stop, CHUNK_CHARS):
        yield i, min(i + CHUNK_CHARS, stop)


def count_chars(text: str, stop: int | None = None) -> np.ndarray:
    """Occurrences of every code point in text[:stop], (CODEPOINTS,) int64, counted a chunk at
    a time so that a corpus of hundreds of MB never needs a second full-size copy."""
    counts = np.zeros(CODEPOINTS, dtype=np.int64)
    for i, j in chunk_spans(0, len(text) if stop is None else stop):
        counts += np.bincount(_codepoints(text[i:j]), minlength=CODEPOINTS)
    return counts


def ids_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id: 2 bytes a character for any real
    character vocabulary, 4 past 65,536 entries."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class Vocab:
    """Maps characters to ids and back. `tokens[i]` is the character with id i."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if not tokens or tokens[0] != UNK:
            raise CheckpointError(f"vocabulary must start with {UNK!r}")
        chars = tokens[1:]
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise CheckpointError("vocabulary entries must be distinct single characters")
        self.tokens: list[str] = tokens
        self._index = {c: i for i, c in enumerate(tokens) if i != UNK_ID}
        self.dtype = ids_dtype(len(tokens))
        self._table: np.ndarray | None = None  # code point -> id, built on first encode

    @classmethod
    def build(cls, text: str) -> Vocab:
        """Vocabulary of every character in `text`, most frequent first (ties by code point)."""
        return cls.from_counts(count_chars(text))

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> Vocab:
        """From `count_chars` output: every character counted, most frequent first."""
        cps = np.flatnonzero(counts)
        order = np.lexsort((cps, -counts[cps]))  # primary: count descending; then code point
        return cls([UNK, *(chr(int(c)) for c in cps[order])])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def id_of(self, ch: str) -> int | None:
        """The id of one character, or None when the vocabulary lacks it."""
        return self._index.get(ch)

    def encode(self, text: str, out: np.ndarray | None = None) -> np.ndarray:
        """Text -> ids (N,) of `self.dtype`; characters not in the vocabulary become UNK_ID.
        `out` (N,), e.g. a memory-mapped file, receives them a chunk at a time."""
        if self._table is None:
            # One flat lookup (2-4 MB) beats a search per character on big texts.
            self._table = np.full(CODEPOINTS, UNK_ID, dtype=self.dtype)
            cps = np.array([ord(c) for c in self.tokens[1:]], dtype=np.int64)
            self._table[cps] = np.arange(1, len(self.tokens), dtype=self.dtype)
        out = np.empty(len(text), dtype=self.dtype) if out is None else out
        for i, j in chunk_spans(0, len(text)):
            out[i:j] = self._table[_codepoints(text[i:j])]
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; the unknown id is written as U+FFFD."""
        toks = self.tokens
        return "".join(UNK_DISPLAY if i == UNK_ID else toks[i] for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` the vocabulary lacks, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))
