"""Deterministic character vocabulary with a reserved unknown symbol at id 0.

Same text -> same ids, on every run and machine: characters are ordered by descending count,
ties broken by code point. The vocabulary travels inside every checkpoint as `list[str]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from charlm.errors import CheckpointError

UNK = "<unk>"  # id 0; never a single character, so it cannot collide with real text
UNK_ID = 0
UNK_DISPLAY = "\ufffd"  # how an unknown id is written back out


def _codepoints(text: str) -> np.ndarray:
    # UTF-32 gives one uint32 per character at C speed: no Python loop over a 200 MB corpus.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


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
        # Sorted code points and their ids make encoding one vectorised searchsorted.
        cps = np.array([ord(c) for c in chars], dtype=np.uint32)
        order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[order]
        self._sorted_ids = (order + 1).astype(np.int32)

    @classmethod
    def build(cls, text: str) -> Vocab:
        """Vocabulary of every character in `text`, most frequent first (ties by code point)."""
        cps, counts = np.unique(_codepoints(text), return_counts=True)
        order = np.lexsort((cps, -counts))  # primary: count descending; then code point
        return cls([UNK, *(chr(int(c)) for c in cps[order])])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def encode(self, text: str) -> np.ndarray:
        """Text -> int32 ids, shape (N,); characters not in the vocabulary become UNK_ID."""
        cps = _codepoints(text)
        if len(self._sorted_cps) == 0:
            return np.zeros(len(cps), dtype=np.int32)
        pos = np.searchsorted(self._sorted_cps, cps)
        pos = np.minimum(pos, len(self._sorted_cps) - 1)
        hit = self._sorted_cps[pos] == cps
        return np.where(hit, self._sorted_ids[pos], UNK_ID).astype(np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; the unknown id is written as U+FFFD."""
        toks = self.tokens
        return "".join(UNK_DISPLAY if i == UNK_ID else toks[i] for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` the vocabulary lacks, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))
