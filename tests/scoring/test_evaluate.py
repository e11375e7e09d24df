import math

import pytest
import torch
import torch.nn.functional as F

import charlm.scoring.evaluate as evaluate_mod
from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN
from charlm.scoring.evaluate import EvalStopped, evaluate, target_logprobs


def test_matches_one_full_forward_and_units(monkeypatch):
    monkeypatch.setattr(evaluate_mod, "CHUNK_TOKENS", 37)  # state carried across 9 chunks
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=9, cell="lstm", embed=4, hidden=8, layers=1, dropout=0))
    ids = torch.randint(9, (301,), dtype=torch.int32)
    r = evaluate(m, ids, streams=1)
    logits, _ = m(ids[:-1].long()[None])
    ref = F.cross_entropy(logits[0], ids[1:].long()).item()
    assert math.isclose(r.loss, ref, rel_tol=1e-5)
    assert r.chars == 300
    assert math.isclose(r.perplexity, math.exp(r.loss))
    assert math.isclose(r.bits_per_char, r.loss / math.log(2))


def test_streams_equal_one_stream_per_segment(monkeypatch):
    """4 streams = the text cut in 4 segments, each scored from a zero state on its own."""
    monkeypatch.setattr(evaluate_mod, "CHUNK_TOKENS", 8)  # chunks of 16 positions
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=5, cell="gru", embed=3, hidden=4, layers=1, dropout=0))
    ids = torch.randint(5, (103,), dtype=torch.int32)  # 102 predictions: streams of 26
    ids[5] = 0
    multi = target_logprobs(m, ids, streams=4)
    starts = range(0, 102, 26)
    ref = torch.cat([target_logprobs(m, ids[s : s + 27], streams=1) for s in starts])
    torch.testing.assert_close(multi, ref, rtol=1e-6, atol=1e-6)
    r = evaluate(m, ids, streams=4)
    assert r.unknown_chars == int((ids[1:] == 0).sum()) > 0
    assert r.loss == pytest.approx(float(-ref.double().mean()), rel=1e-6)


def test_stop_is_asked_between_chunks(monkeypatch):
    monkeypatch.setattr(evaluate_mod, "CHUNK_TOKENS", 16)
    m = CharRNN(ModelConfig(vocab_size=5, cell="gru", embed=3, hidden=4, layers=1, dropout=0))
    ids = torch.randint(5, (200,))
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 3  # a signal arrives while the third chunk is scored

    with pytest.raises(EvalStopped):
        target_logprobs(m, ids, streams=1, stop=stop)
    assert len(asked) == 4
    assert len(target_logprobs(m, ids, streams=1, stop=lambda: False)) == 199
