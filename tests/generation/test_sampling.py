import pytest
import torch

from charlm.config import ModelConfig, SampleConfig
from charlm.data.vocab import Vocab
from charlm.errors import DataError, UsageError
from charlm.generation.sampling import check_prefix, filter_logits, generate, pick_next
from charlm.models.charrnn import CharRNN


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
    batch = text_of(m, v, "我", cfg)
    assert batch == text_of(m, v, "我", cfg)
    assert len(set(batch)) == 3  # each row of the batch draws its own characters
    assert text_of(m, v, "我", SampleConfig(length=40, seed=6, num_samples=3)) != batch
    # greedy rows of a batch are the single greedy text, computed one row at a time
    greedy = SampleConfig(length=15, temperature=0, num_samples=4)
    single = SampleConfig(length=15, temperature=0)
    assert text_of(m, v, "我", greedy) == text_of(m, v, "我", single) * 4


@torch.no_grad()
def test_greedy_is_the_argmax_of_the_full_forward(mv):
    m, v = mv
    raw = dict(length=20, temperature=0, loop_guard=False)  # the network's own argmax
    (text,) = text_of(m, v, "分", SampleConfig(seed=1, **raw))
    ids = [int(i) for i in v.encode("分")]
    for _ in range(20):  # the reference: a full forward over everything so far, then argmax
        logits, _ = m.eval()(torch.tensor([ids]))
        row = logits[0, -1].clone()
        row[0] = float("-inf")  # never the unknown symbol
        ids.append(int(row.argmax()))
    assert text == "".join(v.tokens[i] for i in ids)
    assert text_of(m, v, "分", SampleConfig(seed=2, **raw)) == [text]


def test_samples_follow_the_distribution_within_top_k_and_top_p():
    probs = torch.tensor([0.0, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04])  # id 0 is <unk>
    logits = torch.log(probs).expand(20_000, -1).clone()
    g = torch.Generator().manual_seed(0)

    def freq(cfg):
        ids = pick_next(logits.clone(), cfg, g)
        return torch.bincount(ids, minlength=7).double() / len(ids)

    f = freq(SampleConfig(temperature=1.0))
    assert torch.allclose(f, probs.double(), atol=0.015)  # 3.5 sigma at n = 20,000
    f = freq(SampleConfig(temperature=1.0, top_k=3))
    assert f[4:].sum() == 0 and torch.allclose(f[1:4], probs[1:4].double() / 0.8, atol=0.015)
    f = freq(SampleConfig(temperature=1.0, top_p=0.6))  # 0.4 + 0.25 reaches 0.6: two kept
    assert f[3:].sum() == 0 and torch.allclose(f[1:3], probs[1:3].double() / 0.65, atol=0.015)
    f = freq(SampleConfig(temperature=0.5))  # p^2, renormalised
    sharp = probs.double() ** 2 / (probs.double() ** 2).sum()
    assert torch.allclose(f, sharp, atol=0.015)


def test_lines_stop(mv):
    m, v = mv
    for lines in (1, 2):
        cfg = SampleConfig(length=2000, temperature=3.0, lines=lines, seed=0)
        (t,) = text_of(m, v, "分开", cfg)
        assert t.count("\n") == lines and t.endswith("\n")


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
