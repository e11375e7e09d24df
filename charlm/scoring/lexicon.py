"""A language's words, as a count model that the corpus's own counts lean on.

A corpus of 65k characters has seen few of the words its held-out songs will use: on the Jay
Chou lyrics 59 % of held-out positions come after a context the song has not said before, and
there the models score 4.4-4.8 nats a character. A word list of the language knows which
characters follow which inside its words. charlm ships one for Chinese (jieba's dictionary:
349k modern words with their frequencies, assets/zh_words.txt.gz) and turns it into text a
count model can read: each word written round(log2(freq + 1)) times (at least once), in an
order shuffled with a fixed seed, with nothing between them (Chinese text has no spaces; a word
boundary is then any character, as in real text). Kneser-Ney of order ORDER over that text is
the lexicon model; the corpus's count model becomes

    p_count(w | h) = (1 - b) p_corpus(w | h) + b p_lexicon(w | h)

with b fitted by EM on the tune slice (MixtureFit), against the corpus counts alone. A
character the corpus never had is the vocabulary's <unk> in the lexicon text as in the held-out
text, so the lexicon also says where a word's rare character is likely (left out instead, the
words holding one cost the Jay Chou figures below 121.4 and 19.47). The lexicon is rebuilt from the
asset when a checkpoint loads (the checkpoint stores its name, order and b: a few seconds, not
tens of megabytes of tables), the same text for the same vocabulary.

Measured on the Jay Chou lyrics (the same 600 s networks, the gate refitted): held-out 132.2
-> 119.1, adapted (song cache and dynamic evaluation) 20.35 -> 19.30. The corpus decides
whether to build it at all: the lexicon must write MIN_COVERAGE of its training characters.
"""

from __future__ import annotations

import functools
import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charlm.data.vocab import UNK_ID, Vocab, chunk_spans
from charlm.scoring.kneser_ney import KneserNey

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LEXICONS = {"zh": "zh_words.txt.gz"}
ORDER = 4  # three characters of context: most Chinese words are 2-4 characters
SEED = 1  # the words' order in the lexicon text (any fixed order; the text is rebuilt on load)
# The share of the training text's characters the lexicon must be able to write for a run to
# build it: a Chinese text writes most of its characters in words (the Jay Chou lyrics 0.80,
# counting line breaks and spaces as not written), an English one none.
MIN_COVERAGE = 0.5
MIN_WEIGHT = 0.005  # a fitted b below this adds nothing worth the lexicon's build and lookups


@functools.lru_cache(maxsize=2)
def words(name: str) -> tuple[str, np.ndarray, np.ndarray]:
    """The lexicon's words as the asset lists them: all of them joined into one string, where
    each starts in it ((W + 1,), the last entry its length) and each one's frequency (W,)."""
    if name not in LEXICONS:
        raise ValueError(f"no lexicon named {name!r} (known: {', '.join(LEXICONS)})")
    with gzip.open(ASSETS / LEXICONS[name], "rt", encoding="utf-8") as f:
        rows = [line.partition("\t") for line in f.read().split("\n") if line]
    ws = [w for w, _, _ in rows]
    starts = np.zeros(len(ws) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in ws], out=starts[1:])
    return "".join(ws), starts, np.array([int(c) for _, _, c in rows], dtype=np.int64)


@functools.lru_cache(maxsize=2)
def _charset(name: str) -> frozenset[str]:
    return frozenset(words(name)[0])


def coverage(name: str, vocab: Vocab, char_counts: np.ndarray) -> float:
    """The share of the training characters (`char_counts`, (V,): how often each id occurs)
    that the lexicon's words write."""
    chars = _charset(name)
    inside = np.array([t in chars for t in vocab.tokens], dtype=bool)
    total = float(char_counts.sum())
    return float(char_counts[inside].sum()) / total if total else 0.0


def choose(vocab: Vocab, char_counts: np.ndarray) -> str | None:
    """The lexicon a corpus with these character counts should lean on, or None."""
    for name in LEXICONS:
        if coverage(name, vocab, char_counts) >= MIN_COVERAGE:
            return name
    return None


def lexicon_ids(name: str, vocab: Vocab) -> np.ndarray:
    """The lexicon text (see the module docstring) in `vocab`'s ids, (N,); a character the
    vocabulary lacks is its <unk>, and a word of <unk> alone is left out (it says nothing)."""
    joined, starts, freqs = words(name)
    chars = vocab.encode(joined).astype(np.int64)  # (C,) every word's characters
    known = np.maximum.reduceat(chars != UNK_ID, starts[:-1])  # (W,) any character known
    times = np.maximum(1, np.rint(np.log2(freqs + 1))).astype(np.int64) * known  # (W,)
    bag = np.random.default_rng(SEED).permutation(np.repeat(np.arange(len(freqs)), times))
    lengths = np.diff(starts)[bag]  # (B,) each drawn word's length
    ends = np.cumsum(lengths)
    # each drawn word's characters in turn: its start in `joined`, then +1 along the word
    total = int(ends[-1]) if len(ends) else 0
    at = np.repeat(starts[bag] - (ends - lengths), lengths) + np.arange(total)
    return chars[at]


def build(name: str, vocab: Vocab, order: int = ORDER) -> KneserNey:
    """The lexicon's count model over `vocab` (the last two built are kept: a run's fit and
    its evaluations, or a process loading one checkpoint again, build it once)."""
    return _build(name, tuple(vocab.tokens), order)


@functools.lru_cache(maxsize=2)
def _build(name: str, tokens: tuple[str, ...], order: int) -> KneserNey:
    vocab = Vocab(tokens)
    return KneserNey(lexicon_ids(name, vocab), len(vocab), order)


@dataclass(frozen=True)
class LexiconCounts:
    """The corpus's count model leaning on a lexicon's: what a Mixture holds as its `kn`
    where a lexicon was fitted (the same methods as KneserNey's that scoring and generation
    call). The gate reads the corpus model's entropies: how sure the corpus's own counts are
    is what it weighed the network against."""

    corpus: KneserNey
    lexicon: KneserNey
    name: str
    weight: float  # b: the lexicon's share

    @property
    def order(self) -> int:
        return self.corpus.order

    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def log_probs(self, ids: Any) -> np.ndarray:
        """ln p_count(ids[i] | ids[:i]) for i >= 1, (N-1,)."""
        return np.logaddexp(math.log1p(-self.weight) + self.corpus.log_probs(ids),
                            math.log(self.weight) + self.lexicon.log_probs(ids))  # fmt: skip

    def entropies(self, ids: Any, chunk: int = 256) -> np.ndarray:
        """The corpus model's entropies before each of ids[1:] (N-1,): the gate's feature."""
        return self.corpus.entropies(ids, chunk)

    def distributions(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """(B, V) next-id probabilities after each context."""
        p = self.corpus.distributions(contexts)
        return (1 - self.weight) * p + self.weight * self.lexicon.distributions(contexts)

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        return self.distributions([context])[0]

    def prob(self, context: Sequence[int], w: int) -> float:
        return float(self.distribution(context)[w])

    def seen(self, grams: np.ndarray) -> np.ndarray:
        """Whether each gram occurred in the corpus (the lexicon's words are not the corpus's)."""
        return self.corpus.seen(grams)

    def tables(self) -> dict[str, Any]:
        """The corpus model's tables; the lexicon is stored by name (to_payload)."""
        return self.corpus.tables()

    def to_payload(self) -> dict[str, Any]:
        return {"name": self.name, "order": self.lexicon.order, "weight": self.weight}


def from_payload(d: Any, corpus: KneserNey, vocab: Vocab) -> LexiconCounts:
    """The stored block ({name, order, weight}) over `corpus`, the lexicon rebuilt for
    `vocab`; ValueError/TypeError/KeyError when it is malformed."""
    if not isinstance(d, dict):
        raise TypeError("kn.lexicon is not a mapping")
    name, order, weight = d["name"], int(d["order"]), float(d["weight"])
    if name not in LEXICONS or not 1 <= order <= 8 or not 0.0 < weight < 1.0:
        raise ValueError("kn.lexicon's name, order or weight is out of range")
    return LexiconCounts(corpus, build(name, vocab, order), name, weight)


def for_corpus(setting: str, vocab: Vocab, ids: Any) -> tuple[str, KneserNey] | None:
    """The lexicon a run's count model leans on (`--lexicon`: auto, a name, or none), built
    for its vocabulary; auto reads how often each character occurs in the training ids (N,)
    (a chunk at a time: they may be a memory map)."""
    if setting == "none":
        return None
    name: str | None = setting
    if setting == "auto":
        counts = np.zeros(len(vocab), dtype=np.int64)
        for i, j in chunk_spans(0, len(ids)):
            counts += np.bincount(np.asarray(ids[i:j]), minlength=len(vocab))
        name = choose(vocab, counts)
    return None if name is None else (name, build(name, vocab))
