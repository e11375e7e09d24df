import numpy as np
import pytest

from charlm.data.vocab import UNK, UNK_ID, Vocab
from charlm.errors import CheckpointError


def test_deterministic_order_and_ids():
    text = "bbaac\n分分"
    v1, v2 = Vocab.build(text), Vocab.build(text)
    assert v1.tokens == v2.tokens
    # count descending, ties by code point; <unk> first
    assert v1.tokens == [UNK, "a", "b", "分", "\n", "c"]


def test_encode_decode_round_trip_and_unknown():
    v = Vocab.build("我爱你\n")
    ids = v.encode("你爱我\n")
    assert ids.dtype == np.uint16  # 2 bytes a character below 65,536 entries
    assert v.decode(ids.tolist()) == "你爱我\n"
    ids = v.encode("你好")
    assert ids[1] == UNK_ID
    assert v.decode(ids.tolist()) == "你\ufffd"
    assert v.unknown_chars("你好吗好") == ["好", "吗"]


def test_rebuild_from_tokens_and_bad_tokens():
    v = Vocab.build("分开")
    assert Vocab(v.tokens).encode("开分").tolist() == v.encode("开分").tolist()
    with pytest.raises(CheckpointError):
        Vocab(["a", "b"])
    with pytest.raises(CheckpointError):
        Vocab([UNK, "a", "a"])


def test_astral_characters():
    v = Vocab.build("𠀀a")
    assert v.decode(v.encode("a𠀀").tolist()) == "a𠀀"


def test_chunked_count_and_encode_equal_one_pass(monkeypatch):
    """Counting and encoding a chunk at a time gives what one pass over the text gives."""
    import charlm.data.vocab as vocab_mod

    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("分开的爱你\n𠀀ab"), size=10_007))
    whole = Vocab.build(text)
    expected = whole.encode(text)
    monkeypatch.setattr(vocab_mod, "CHUNK_CHARS", 97)
    chunked = Vocab.build(text)
    assert chunked.tokens == whole.tokens
    assert np.array_equal(chunked.encode(text), expected)
    counts = vocab_mod.count_chars(text, stop=5_000)
    assert counts.sum() == 5_000 and counts[ord("分")] == text[:5_000].count("分")


def test_ids_dtype_widens_past_65536_entries():
    from charlm.data.vocab import ids_dtype

    assert ids_dtype(65_536) == np.uint16 and ids_dtype(65_537) == np.uint32
