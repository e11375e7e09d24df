import pytest
import torch

from charlm.config import ModelConfig, SampleConfig
from charlm.errors import DataError, UsageError
from charlm.model import CharRNN
from charlm.sampling import check_prefix, filter_logits, generate
from charlm.vocab import Vocab


@pytest.fixture
def mv():
    torch.manual_seed(0)
    vocab = Vocab.build("分开不了\n我爱你")
    m = CharRNN(ModelConfig(vocab_size=len(vocab), embed=8, hidden=16, layers=1, dropout=0))
    return m, vocab


def text_of(m, vocab, prefix, cfg):
    texts = [""] * cfg.num_samples
    for pieces in generate(m, vocab, prefix, cfg):
        for i, p in enumerate(pieces):
            texts[i] += p
    return texts


def test_starts_with_prefix_and_has_length(mv):
    m, v = mv
    (t,) = text_of(m, v, "分开", SampleConfig(length=30, seed=1))
    assert t.startswith("分开") and len(t) == 32
    assert "\ufffd" not in t  # <unk> is never written


def test_same_seed_same_text_and_batched_samples(mv):
    m, v = mv
    cfg = SampleConfig(length=40, seed=5, num_samples=3)
    assert text_of(m, v, "我", cfg) == text_of(m, v, "我", cfg)
    assert text_of(m, v, "我", SampleConfig(length=40, seed=5)) == text_of(
        m, v, "我", SampleConfig(length=40, seed=5)
    )


def test_greedy_is_argmax_and_seed_free(mv):
    m, v = mv
    a = text_of(m, v, "分", SampleConfig(length=20, temperature=0, seed=1))
    b = text_of(m, v, "分", SampleConfig(length=20, temperature=0, seed=2))
    assert a == b


def test_lines_stop(mv):
    m, v = mv
    (t,) = text_of(m, v, "分开", SampleConfig(length=2000, temperature=3.0, lines=2, seed=0))
    assert t.count("\n") == 2 and t.endswith("\n")


def test_empty_prefix_works(mv):
    m, v = mv
    (t,) = text_of(m, v, "", SampleConfig(length=10, seed=0))
    assert len(t) == 10


def test_filter_logits_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k = filter_logits(logits, 2, 1.0)
    assert torch.isinf(k[0, 2:]).all() and torch.isfinite(k[0, :2]).all()
    p = filter_logits(logits, 0, 0.7)  # 0.5 + 0.3 reaches 0.7: keep two
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    p = filter_logits(logits, 0, 0.01)  # the top token always stays
    assert torch.isfinite(p[0, 0]) and torch.isinf(p[0, 1:]).all()


def test_unknown_prefix_chars(mv):
    _, v = mv
    with pytest.raises(DataError, match="'好'"):
        check_prefix(v, "你好", skip_unknown=False)
    assert check_prefix(v, "你好", skip_unknown=True) == "你"


def test_bad_sample_options():
    with pytest.raises(UsageError, match="temperature"):
        SampleConfig(temperature=-1)
    with pytest.raises(UsageError, match="top-p"):
        SampleConfig(top_p=1.5)
