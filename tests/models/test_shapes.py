import json

import pytest
import torch
from torch import nn

from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN
from charlm.models.shapes import describe

from ..conftest import invoke


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_shapes_equal_the_real_modules(cell):
    cfg = ModelConfig(vocab_size=11, cell=cell, embed=4, hidden=6, layers=2, dropout=0)
    d = describe(cfg, batch=3, seq_len=5)
    logits, state = CharRNN(cfg)(torch.zeros(3, 5, dtype=torch.long))
    assert d["tensors"]["logits"] == list(logits.shape) == [3, 5, 11]
    h = state[0]  # (h,) or (h, c): charlm's one state form
    assert len(state) == (2 if cell == "lstm" else 1)
    assert d["tensors"]["state h_n"] == list(h.shape) == [2, 3, 6]
    assert d["total_params"] == sum(p.numel() for p in CharRNN(cfg).parameters())


def test_bidirectional_shapes_and_reason():
    cfg = ModelConfig(vocab_size=11, cell="lstm", embed=4, hidden=6, layers=2)
    d = describe(cfg, batch=3, seq_len=5, bidirectional=True)
    out, (h, _c) = nn.LSTM(4, 6, 2, batch_first=True, bidirectional=True)(torch.zeros(3, 5, 4))
    assert d["tensors"]["rnn output"] == list(out.shape) == [3, 5, 12]  # (B, T, 2H)
    assert d["tensors"]["state h_n"] == list(h.shape) == [4, 3, 6]  # (2L, B, H)
    assert not d["generates"] and "cannot" in d["reason"]


def test_info_cli_text_and_json(runner):
    r = invoke(runner, ["info", "--cell", "gru", "--hidden", "8", "--vocab-size", "20", "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["tensors"]["rnn output"] == [32, 35, 8]
    r = invoke(runner, ["info", "--embed", "0", "--vocab-size", "20", "--bidirectional"])
    assert r.exit_code == 0 and "cannot generate" in r.stdout and "one-hot" in r.stdout
