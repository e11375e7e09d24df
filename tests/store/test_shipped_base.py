"""The Chinese base shipped in the package: small, loadable by name, and it writes Chinese
verse before any training."""

import unicodedata

import torch

from charlm import api
from charlm.store import checkpoint

PATH = checkpoint.ASSETS / checkpoint.BUILTIN["zh"]


def test_the_shipped_base_is_compact_and_holds_only_what_generation_needs():
    assert PATH.is_file() and PATH.stat().st_size < 8_000_000
    payload = checkpoint.load(PATH)
    assert {"optimizer_state", "progress", "kn", "members"}.isdisjoint(payload)
    assert all(t.dtype == torch.float16 for t in payload["model_state"].values())
    assert len(payload["vocab"]) <= 6001  # capped by frequency (base/build_zh_base.py)
    assert payload["corpus"]["built_by"].startswith("base/build_zh_base.py")


def test_generate_from_zh_writes_chinese_verse(tmp_path):
    lm = api.load("zh", checkpoint_dir=tmp_path)  # no run named zh there: the shipped one
    assert lm.path == PATH
    text = lm.generate_text("春风", seed=1, length=60, lines=4)
    body = text.replace("\n", "")
    assert text.startswith("春风") and text.count("\n") >= 2
    han = sum(unicodedata.name(c, "").startswith("CJK UNIFIED") for c in body)
    assert han >= 0.75 * len(body)  # verse: Han characters and a little punctuation
    assert all(unicodedata.category(c)[0] in "LP" for c in body)
