"""The corpus as ids, and the memory-mapped cache that makes a big corpus quick the second time.

A corpus of hundreds of MB is counted (vocabulary) and encoded a chunk at a time, straight into
a file of 2-byte ids (4 past 65,536 entries), which training then reads as a memory map: the
operating system keeps in RAM only the pages the samplers touch.

    <checkpoint-dir>/.cache/ids/<fingerprint>-v<val_fraction>.ids    the ids of the whole text
    <checkpoint-dir>/.cache/ids/<fingerprint>-v<val_fraction>.json   vocabulary, dtype, length,
                                                                     sha256 of the .ids bytes

The key is the text's fingerprint (sha256 of the normalised text, as checkpoints record it) and
the held-out fraction (the vocabulary is counted over the training part only). Texts under
CACHE_MIN_CHARS encode in well under a second and are not cached. An entry that does not match
its record is rebuilt, never trusted: the record's own digest covers every field read back
(vocabulary included), the ids' digest every byte. Only the text's own vocabulary is ever
written: encoding with another one (a checkpoint trained elsewhere, evaluated on this text)
reads a matching entry or encodes in memory, and leaves the cache as it was. Deleting the
folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlm.data.vocab import Vocab, count_chars
from charlm.errors import CheckpointError

CACHE_MIN_CHARS = 1_000_000
CACHE_SUBDIR = Path(".cache") / "ids"
_HASH_CHUNK = 1 << 24  # bytes hashed at a time


@dataclass(frozen=True)
class EncodedText:
    """A text's vocabulary and ids. ids (N,) uint16/uint32, in memory or memory-mapped
    (copy-on-write: in-place edits, like the unknown-symbol noise, never reach the file)."""

    vocab: Vocab
    ids: np.ndarray
    n_train: int  # ids[:n_train] is the training part, ids[n_train:] the held-out part
    cache: str | None = None  # "hit" or "written" with its path, for the run header; None


def n_train_chars(n: int, val_fraction: float) -> int:
    """Characters before the held-out tail; the same cut as corpus.split_text."""
    return n - int(n * val_fraction)


def cache_paths(cache_root: Path, fingerprint: str, val_fraction: float) -> tuple[Path, Path]:
    stem = f"{fingerprint}-v{val_fraction!r}"  # by hand: with_suffix would eat ".1"
    folder = cache_root / CACHE_SUBDIR
    return folder / f"{stem}.ids", folder / f"{stem}.json"


def encode_text(
    text: str,
    fingerprint: str,
    val_fraction: float,
    cache_root: Path | None,
    vocab: Vocab | None = None,
) -> EncodedText:
    """Vocabulary (counted over the training part, unless given) and ids of the whole text;
    from the cache under `cache_root` when it holds this text, into it when it is big enough."""
    n_train = n_train_chars(len(text), val_fraction)
    if cache_root is None or len(text) < CACHE_MIN_CHARS:
        vocab = vocab or Vocab.from_counts(count_chars(text, n_train))
        return EncodedText(vocab, vocab.encode(text), n_train)
    ids_path, meta_path = cache_paths(cache_root, fingerprint, val_fraction)
    hit = _open(ids_path, meta_path, len(text), vocab)
    if hit is not None:
        return EncodedText(hit[0], hit[1], n_train, f"hit {ids_path}")
    own = Vocab.from_counts(count_chars(text, n_train))
    if vocab is not None and vocab.tokens != own.tokens:
        return EncodedText(vocab, vocab.encode(text), n_train)  # not this text's: not cached
    vocab = own
    try:
        ids = _write(text, vocab, ids_path, meta_path, fingerprint, val_fraction)
    except OSError:  # a full disk or a read-only folder costs speed, not the run
        return EncodedText(vocab, vocab.encode(text), n_train)
    return EncodedText(vocab, ids, n_train, f"written {ids_path}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


RECORD_FIELDS = ("fingerprint", "val_fraction", "length", "dtype", "sha256", "vocab")


def _record_digest(meta: dict) -> str:
    """sha256 over every field of the record that is read back."""
    fields = {k: meta.get(k) for k in RECORD_FIELDS}
    return hashlib.sha256(
        json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()


def _open(
    ids_path: Path, meta_path: Path, n: int, vocab: Vocab | None
) -> tuple[Vocab, np.ndarray] | None:
    """The cached vocabulary and memory-mapped ids, or None when absent or not what it says."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("record") != _record_digest(meta):
            return None  # a field changed after it was written (a flipped bit, an edit)
        cached = Vocab(meta["vocab"])
        dtype = np.dtype(meta["dtype"])
        if meta["length"] != n or dtype != cached.dtype:
            return None
        if ids_path.stat().st_size != n * dtype.itemsize or _sha256(ids_path) != meta["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):  # damaged: rebuild
        return None
    if vocab is not None and vocab.tokens != cached.tokens:
        return None  # a checkpoint's own vocabulary always wins
    return cached, np.memmap(ids_path, dtype=dtype, mode="c", shape=(n,))


def _write(
    text: str, vocab: Vocab, ids_path: Path, meta_path: Path, fingerprint: str, vf: float
) -> np.ndarray:
    """Encode into a temporary file, then rename: a reader sees a whole entry or none."""
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ids_path.parent / f"{ids_path.name}.tmp{os.getpid()}"
    tmp_meta = meta_path.parent / f"{meta_path.name}.tmp{os.getpid()}"
    try:
        out = np.memmap(tmp, dtype=vocab.dtype, mode="w+", shape=(len(text),))
        vocab.encode(text, out=out)
        out.flush()
        del out
        meta = {
            "fingerprint": fingerprint,
            "val_fraction": vf,
            "length": len(text),
            "dtype": vocab.dtype.name,
            "sha256": _sha256(tmp),
            "vocab": vocab.tokens,
        }
        meta["record"] = _record_digest(meta)
        os.replace(tmp, ids_path)
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_meta, meta_path)  # the record last: it vouches for the ids
    finally:
        tmp.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
    return np.memmap(ids_path, dtype=vocab.dtype, mode="c", shape=(len(text),))
