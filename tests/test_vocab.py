import numpy as np
import pytest

from charlm.errors import CheckpointError
from charlm.vocab import UNK, UNK_ID, Vocab


def test_deterministic_order_and_ids():
    text = "bbaac\n分分"
    v1, v2 = Vocab.build(text), Vocab.build(text)
    assert v1.tokens == v2.tokens
    # count descending, ties by code point; <unk> first
    assert v1.tokens == [UNK, "a", "b", "分", "\n", "c"]


def test_encode_decode_round_trip_and_unknown():
    v = Vocab.build("我爱你\n")
    ids = v.encode("你爱我\n")
    assert ids.dtype == np.int32
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
