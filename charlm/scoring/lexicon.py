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

    p_count(w | h) = (1 - b) p_corpus(w | h) + b p_lexicon(w | h)   (roughly: LexiconCounts)

with b fitted on the tune slice (MixtureFit), against the corpus counts alone, and the
characters the lexicon never writes (line breaks, spaces, punctuation) left at the corpus's
chance (LexiconCounts). A character the corpus never had is the vocabulary's <unk> in the
lexicon text as in the held-out text, so the lexicon also says where a word's rare character
is likely (left out instead, the words holding one cost the Jay Chou figure below: 121.43
against 119.28). The lexicon is rebuilt from the asset when a checkpoint loads (the checkpoint
stores its name, order, b and kept ids, not tens of megabytes of tables; `build` caches them
in the checkpoint folder), the same text for the same vocabulary.

Measured on the Jay Chou lyrics (the same 600 s networks, the gate refitted): held-out 132.2
-> 118.65; trained with it at 600 s, 118.26 held out and 19.52 adapted (song cache and
dynamic evaluation), where the defaults before scored 132.24 and 20.66. The corpus decides
whether to build it at all: the lexicon must write MIN_COVERAGE of its training characters.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charlm.data.vocab import UNK_ID, Vocab, chunk_spans
from charlm.scoring.kneser_ney import KneserNey

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LEXICONS = {"zh": "zh_words.txt.gz"}
CACHE_SUBDIR = Path(".cache") / "lexicon"
ORDER = 4  # three characters of context: most Chinese words are 2-4 characters
SEED = 1  # the words' order in the lexicon text (any fixed order; the text is rebuilt on load)
# The share of the training text's characters the lexicon must be able to write for a run to
# build it: a Chinese text writes most of its characters in words (the Jay Chou lyrics 0.80,
# counting line breaks and spaces as not written), an English one none.
MIN_COVERAGE = 0.5
MIN_WEIGHT = 0.005  # a fitted b below this adds nothing worth the lexicon's build and lookups
# What the lexicon leaves to the corpus (LexiconCounts): the characters it never writes, the
# most frequent first, until they make this share of those characters' occurrences, at most
# KEEP_MAX of them (the Jay Chou lyrics: the line break, two spaces and five more, 93 %).
KEEP_SHARE = 0.99
KEEP_MAX = 8


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


def build(name: str, vocab: Vocab, order: int = ORDER, cache_root: Path | None = None) -> KneserNey:
    """The lexicon's count model over `vocab` (the last two built are kept: a run's fit and
    its evaluations, or a process loading one checkpoint again, build it once). With
    `cache_root` (store.caches.cache_root_for: the run's checkpoint folder, or the
    user's cache folder), its tables are read from, or else written
    to, `<cache_root>/.cache/lexicon/`: building takes 2-3 s that every `charlm generate`
    would pay, reading 0.1 s. A cache entry that does not read back is rebuilt."""
    tokens = tuple(vocab.tokens)
    if cache_root is None or not Path(cache_root).is_dir():
        return _build(name, tokens, order)
    path = _cache_path(Path(cache_root), name, tokens, order)
    try:
        with np.load(path) as f:
            kn = KneserNey.from_tables({
                "order": int(f["order"]), "vocab_size": int(f["vocab_size"]),
                "unk_mass": float(f["unk_mass"]), "discounts": f["discounts"],
                "keys": [f[f"keys{k}"] for k in range(order)],
                "counts": [f[f"counts{k}"] for k in range(order)],
            })  # fmt: skip
        if kn.order == order and kn.vocab_size == len(tokens):
            return kn
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # absent or damaged: build it again
    kn = _build(name, tokens, order)
    t = kn.tables()
    arrays = {f"keys{k}": a for k, a in enumerate(t["keys"])}
    arrays.update({f"counts{k}": a for k, a in enumerate(t["counts"])})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # written whole, then renamed: a reader never sees half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, order=t["order"], vocab_size=t["vocab_size"], unk_mass=t["unk_mass"],
                     discounts=t["discounts"], **arrays)  # fmt: skip
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only folder, a .cache that is a file: no cache, the model all the same
    finally:  # after a failure or a signal (SIGTERM raises here): no half-written debris
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return kn


def _cache_path(root: Path, name: str, tokens: tuple[str, ...], order: int) -> Path:
    """The entry for this lexicon (its asset's bytes), vocabulary and order."""
    h = hashlib.sha256(_asset_digest(name))
    h.update(f"{SEED}|{order}|".encode())
    h.update("\n".join(tokens).encode("utf-8"))
    return root / CACHE_SUBDIR / f"{name}-o{order}-{h.hexdigest()[:20]}.npz"


@functools.lru_cache(maxsize=2)
def _asset_digest(name: str) -> bytes:
    """The asset's sha256, read once a process (a load asks for the cache entry's name)."""
    return hashlib.sha256((ASSETS / LEXICONS[name]).read_bytes()).digest()


@functools.lru_cache(maxsize=2)
def _build(name: str, tokens: tuple[str, ...], order: int) -> KneserNey:
    vocab = Vocab(tokens)
    return KneserNey(lexicon_ids(name, vocab), len(vocab), order)


@dataclass(frozen=True)
class Lexicon:
    """A lexicon built for a run: its name, its count model over the run's vocabulary, and
    the ids it leaves to the corpus (`keep_ids`)."""

    name: str
    kn: KneserNey
    keep: tuple[int, ...]


@dataclass(frozen=True)
class LexiconCounts:
    """The corpus's count model leaning on a lexicon's: what a Mixture holds as its `kn`
    where a lexicon was fitted (the same methods as KneserNey's that scoring and generation
    call). The lexicon never writes a line break, a space or a punctuation mark, so it must
    not take their chance: the ids in `keep` keep the corpus's probability, and the lexicon
    reshares only the rest, s(h) = 1 - p_corpus(keep | h):

        p(w | h) = p_corpus(w | h)                                      w in keep
                 = (1 - b) p_corpus(w | h) + b s(h) p_lex(w | h) / (1 - p_lex(keep | h))

    (leaning on it plainly, a small corpus whose tune slice wanted b = 0.54 wrote lines that
    never ended; on the Jay Chou lyrics it also scored 118.65 against 119.00). The gate reads
    the corpus model's entropies: how sure the corpus's own counts are is what it weighed the
    network against."""

    corpus: KneserNey
    lexicon: KneserNey
    name: str
    weight: float  # b: the lexicon's share of what `keep` leaves
    keep: tuple[int, ...] = ()

    @property
    def order(self) -> int:
        return self.corpus.order

    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def log_probs(self, ids: Any) -> np.ndarray:
        """ln p_count(ids[i] | ids[:i]) for i >= 1, (N-1,)."""
        return mix_scores(*self.parts(ids), self.weight)

    def parts(self, ids: Any) -> tuple[np.ndarray, ...]:
        """What log_probs mixes, (N-1,) each: the corpus's and the lexicon's ln p of each
        target, ln s(h), ln(1 - p_lex(keep | h)), and whether the target is kept."""
        seq = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids, dtype=np.int64)
        n = max(len(seq) - 1, 0)
        kept_c, kept_l = np.zeros(n), np.zeros(n)
        for k in self.keep:  # a few ids: one pass of each model per id
            kept_c += np.exp(self.corpus.log_probs_of(seq, k))
            kept_l += np.exp(self.lexicon.log_probs_of(seq, k))
        is_kept = np.isin(seq[1:], self.keep) if n else np.zeros(0, dtype=bool)
        return (self.corpus.log_probs(seq), self.lexicon.log_probs(seq),
                np.log1p(-np.minimum(kept_c, 1 - 1e-12)), np.log1p(-np.minimum(kept_l, 1 - 1e-12)),
                is_kept)  # fmt: skip

    def entropies(self, ids: Any, chunk: int = 256) -> np.ndarray:
        """The corpus model's entropies before each of ids[1:] (N-1,): the gate's feature."""
        return self.corpus.entropies(ids, chunk)

    def distributions(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """(B, V) next-id probabilities after each context."""
        return self.distributions_and_corpus(contexts)[0]

    def distributions_and_corpus(
        self, contexts: Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """distributions(contexts), and the corpus model's alone (what the gate reads)."""
        p = self.corpus.distributions(contexts)  # (B, V)
        lex = self.lexicon.distributions(contexts)  # (B, V)
        keep = list(self.keep)
        s = 1 - p[:, keep].sum(1, keepdims=True)  # (B, 1) what the kept ids leave
        left = 1 - lex[:, keep].sum(1, keepdims=True)
        out = (1 - self.weight) * p + self.weight * s * lex / np.maximum(left, 1e-12)
        out[:, keep] = p[:, keep]
        return out, p

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
        return {"name": self.name, "order": self.lexicon.order, "weight": self.weight,
                "keep": list(self.keep)}  # fmt: skip


def mix_scores(
    corpus: np.ndarray, lex: np.ndarray, log_s: np.ndarray, log_left: np.ndarray,
    is_kept: np.ndarray, weight: float,
) -> np.ndarray:  # fmt: skip
    """ln p of each target (LexiconCounts.parts, (N,) each) at the lexicon's share `weight`."""
    word = np.logaddexp(math.log1p(-weight) + corpus, math.log(weight) + log_s + lex - log_left)
    return np.where(is_kept, corpus, word)


def fit_share(parts: tuple[np.ndarray, ...], steps: int = 40) -> float:
    """The share b in (0, 1) that maximises the mean ln p of the targets (`parts`, as
    LexiconCounts.parts gives them); the likelihood is concave in b: a golden-section search."""
    lo, hi = 1e-4, 1 - 1e-4
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = (float(mix_scores(*parts, x).mean()) for x in (a, b))
    for _ in range(steps):
        if fa < fb:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = float(mix_scores(*parts, b).mean())
        else:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = float(mix_scores(*parts, a).mean())
    return (lo + hi) / 2


def keep_ids(name: str, vocab: Vocab, char_counts: np.ndarray) -> tuple[int, ...]:
    """The characters the lexicon leaves to the corpus: of those it never writes (line breaks,
    spaces, punctuation, Latin letters; <unk> aside, which it does write), the most frequent in
    the training text (`char_counts`, (V,)), the fewest that make KEEP_SHARE of their
    occurrences, at most KEEP_MAX (each costs a pass of both models when scoring)."""
    chars = _charset(name)
    outside = np.array([i > 0 and t not in chars for i, t in enumerate(vocab.tokens)])
    ids = np.flatnonzero(outside & (char_counts > 0))
    if not len(ids):
        return ()
    ids = ids[np.argsort(-char_counts[ids], kind="stable")]
    share = np.cumsum(char_counts[ids]) / char_counts[ids].sum()
    n = min(KEEP_MAX, int(np.searchsorted(share, KEEP_SHARE)) + 1)
    return tuple(int(i) for i in ids[:n])


def from_payload(
    d: Any, corpus: KneserNey, vocab: Vocab, cache_root: Path | None = None
) -> LexiconCounts:
    """The stored block ({name, order, weight, keep}) over `corpus`, the lexicon rebuilt for
    `vocab` (or read from the cache under `cache_root`, see build); ValueError/TypeError/
    KeyError when it is malformed."""
    if not isinstance(d, dict):
        raise TypeError("kn.lexicon is not a mapping")
    name, order, weight = d["name"], int(d["order"]), float(d["weight"])
    if name not in LEXICONS or not 1 <= order <= 8 or not 0.0 < weight < 1.0:
        raise ValueError("kn.lexicon's name, order or weight is out of range")
    keep = tuple(int(i) for i in d["keep"])
    if len(keep) > KEEP_MAX or not all(0 < i < len(vocab) for i in keep):
        raise ValueError("kn.lexicon.keep holds ids outside the vocabulary")
    return LexiconCounts(corpus, build(name, vocab, order, cache_root), name, weight, keep)


def for_corpus(setting: str, vocab: Vocab, ids: Any) -> Lexicon | None:
    """The lexicon a run's count model leans on (`--lexicon`: auto, a name, or none), built
    for its vocabulary, from how often each character occurs in the training ids (N,) (read a
    chunk at a time: they may be a memory map)."""
    if setting == "none":
        return None
    counts = np.zeros(len(vocab), dtype=np.int64)
    for i, j in chunk_spans(0, len(ids)):
        counts += np.bincount(np.asarray(ids[i:j]), minlength=len(vocab))
    name = choose(vocab, counts) if setting == "auto" else setting
    if name is None:
        return None
    return Lexicon(name, build(name, vocab), keep_ids(name, vocab, counts))
