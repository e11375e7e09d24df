"""ids_cache.py: memory-mapped ids equal in-memory ids; a cache is never trusted blindly."""

import json

import numpy as np
import pytest
import torch

import charlm.data.ids_cache as ids_cache
from charlm.data.corpus import fingerprint, split_text
from charlm.data.ids_cache import cache_paths, encode_text
from charlm.data.noise import UnknownNoise
from charlm.data.vocab import Vocab

from ..conftest import tiny_text


@pytest.fixture(autouse=True)
def small_cache_threshold(monkeypatch):
    monkeypatch.setattr(ids_cache, "CACHE_MIN_CHARS", 100)


def text_and_fp():
    # 鲸 occurs once in the training part; 𠀀 only in the held-out part (not in the vocabulary)
    text = "鲸" + tiny_text() + "𠀀"
    return text, fingerprint(text)


def in_memory(text, vf=0.1):
    train, _ = split_text(text, vf)
    vocab = Vocab.build(train)
    return vocab, vocab.encode(text)


def test_memory_mapped_ids_equal_in_memory_ids(tmp_path):
    text, fp = text_and_fp()
    vocab, ids = in_memory(text)
    first = encode_text(text, fp, 0.1, tmp_path)
    assert first.cache.startswith("written") and isinstance(first.ids, np.memmap)
    second = encode_text(text, fp, 0.1, tmp_path)
    assert second.cache.startswith("hit") and isinstance(second.ids, np.memmap)
    for got in (first, second):
        assert got.vocab.tokens == vocab.tokens
        assert got.ids.dtype == np.uint16 and np.array_equal(got.ids, ids)
        assert got.n_train == len(split_text(text, 0.1)[0])
    # another held-out fraction is another vocabulary, so another entry
    third = encode_text(text, fp, 0.2, tmp_path)
    assert third.cache.startswith("written") and np.array_equal(third.ids, in_memory(text, 0.2)[1])


def test_small_texts_and_no_folder_stay_in_memory(tmp_path, monkeypatch):
    text, fp = text_and_fp()
    got = encode_text(text, fp, 0.1, None)
    assert got.cache is None and not isinstance(got.ids, np.memmap)
    monkeypatch.setattr(ids_cache, "CACHE_MIN_CHARS", len(text) + 1)
    assert encode_text(text, fp, 0.1, tmp_path).cache is None
    assert not (tmp_path / ".cache").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "record", "no-ids", "vocab-bit"])
def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path, damage):
    text, fp = text_and_fp()
    encode_text(text, fp, 0.1, tmp_path)
    ids_path, meta_path = cache_paths(tmp_path, fp, 0.1)
    if damage == "flip":
        data = bytearray(ids_path.read_bytes())
        data[10] ^= 0x01
        ids_path.write_bytes(bytes(data))
    elif damage == "truncate":
        ids_path.write_bytes(ids_path.read_bytes()[:-2])
    elif damage == "record":
        meta_path.write_text("{not json", encoding="utf-8")
    elif damage == "vocab-bit":  # one bit of a character in the record: 道 becomes 遒
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        i = next(k for k, t in enumerate(meta["vocab"]) if len(t) == 1 and t != "\n")
        meta["vocab"][i] = chr(ord(meta["vocab"][i]) ^ 0x01)
        meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    else:
        ids_path.unlink()
    got = encode_text(text, fp, 0.1, tmp_path)
    assert got.cache.startswith("written")
    assert np.array_equal(got.ids, in_memory(text)[1])
    assert encode_text(text, fp, 0.1, tmp_path).cache.startswith("hit")


def test_a_checkpoints_vocabulary_wins_over_the_cached_one(tmp_path):
    text, fp = text_and_fp()
    encode_text(text, fp, 0.1, tmp_path)
    other = Vocab.build("分开的爱你\n")  # e.g. a checkpoint trained on something else
    got = encode_text(text, fp, 0.1, tmp_path, vocab=other)
    assert got.vocab is other and np.array_equal(got.ids, other.encode(text))
    assert encode_text(text, fp, 0.1, tmp_path).cache.startswith("hit")  # entry untouched


def test_another_vocabulary_never_writes_the_entry(tmp_path):
    """Bug: `evaluate --checkpoint A --corpus big.txt` (A trained elsewhere) wrote big.txt's
    entry with A's vocabulary; the next `train --corpus big.txt` hit it and trained with
    half the characters as <unk>."""
    text, fp = text_and_fp()
    other = Vocab.build("分开的爱你\n")
    got = encode_text(text, fp, 0.1, tmp_path, vocab=other)  # nothing cached yet
    assert got.cache is None and np.array_equal(got.ids, other.encode(text))
    assert not cache_paths(tmp_path, fp, 0.1)[1].exists()
    train = encode_text(text, fp, 0.1, tmp_path)  # the text's own vocabulary, then cached
    assert train.vocab.tokens == in_memory(text)[0].tokens and train.cache.startswith("written")
    own = Vocab(list(train.vocab.tokens))  # a checkpoint of this very text: the entry serves
    assert encode_text(text, fp, 0.1, tmp_path, vocab=own).cache.startswith("hit")


def test_noise_edits_never_reach_the_cache_file(tmp_path):
    text, fp = text_and_fp()
    got = encode_text(text, fp, 0.1, tmp_path)
    ids_path, _ = cache_paths(tmp_path, fp, 0.1)
    before = ids_path.read_bytes()
    train = torch.from_numpy(got.ids)[: got.n_train]
    noise = UnknownNoise(train, len(got.vocab), prob=1.0)
    assert noise.positions.tolist() == [0]  # 鲸, the once-seen character
    with noise:
        noise.draw_epoch(torch.Generator().manual_seed(0))
        assert (train[torch.from_numpy(noise.positions)] == 0).all()
    assert ids_path.read_bytes() == before
    assert np.array_equal(got.ids, in_memory(text)[1])  # restored in memory too


def test_a_folder_it_cannot_make_costs_the_cache_not_the_run(tmp_path):
    text, fp = text_and_fp()
    (tmp_path / ".cache").write_text("a file where the folder would go")
    got = encode_text(text, fp, 0.1, tmp_path)
    assert got.cache is None and np.array_equal(got.ids, in_memory(text)[1])


def test_a_write_that_fails_leaves_no_entry(tmp_path, monkeypatch):
    text, fp = text_and_fp()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ids_cache.os, "replace", full_disk)
    got = encode_text(text, fp, 0.1, tmp_path)
    assert got.cache is None and np.array_equal(got.ids, in_memory(text)[1])
    assert [p.name for p in (tmp_path / ".cache" / "ids").iterdir()] == []


def test_train_writes_the_cache_then_uses_it_with_the_same_result(tmp_path, runner):
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    ck = tmp_path / "ck"
    base = ["train", "--corpus", str(corpus), "--checkpoint-dir", str(ck), "--max-steps", "6",
            "--batch-size", "4", "--seq-len", "8", "--hidden", "16", "--seed", "3"]  # fmt: skip
    first = runner.invoke(ids_cache_app(), [*base, "--run", "a"])
    second = runner.invoke(ids_cache_app(), [*base, "--run", "b"])
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    assert "ids cache: written" in first.stderr and "ids cache: hit" in second.stderr
    rows = [json.loads((ck / r / "metrics.jsonl").read_text().splitlines()[-1]) for r in "ab"]
    assert rows[0]["val_ppl"] == rows[1]["val_ppl"]
    resumed = runner.invoke(ids_cache_app(), [*base, "--run", "a", "--resume",
                                              "--max-steps", "8"])  # fmt: skip
    assert resumed.exit_code == 0 and "ids cache: hit" in resumed.stderr


def ids_cache_app():
    from charlm.cli import app

    return app


def test_a_text_of_a_million_characters_is_cached_and_one_less_is_not(tmp_path, monkeypatch):
    """README: "A text of 1M characters or more is" cached (the threshold as shipped)."""
    monkeypatch.undo()  # the shipped threshold, not this file's small one
    text = ("分开不了我爱你\n" * 125_000)[:1_000_000]
    assert encode_text(text, fingerprint(text), 0.1, tmp_path).cache.startswith("written")
    shorter = text[:-1]
    assert encode_text(shorter, fingerprint(shorter), 0.1, tmp_path).cache is None
