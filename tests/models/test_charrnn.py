import pytest
import torch
import torch.nn.functional as F

from charlm.config import ModelConfig
from charlm.errors import UsageError
from charlm.models.charrnn import CharRNN
from charlm.models.state import detach_state


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("embed", [0, 6])
def test_chunked_forward_with_carried_state_equals_full(cell, embed):
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=11, cell=cell, embed=embed, hidden=5, layers=2, dropout=0, tie=embed > 0
    )
    m = CharRNN(cfg)
    m.eval()
    x = torch.randint(11, (3, 12))
    full, state_full = m(x)
    state, outs = None, []
    for chunk in x.split(5, dim=1):
        out, state = m(chunk, state)
        state = detach_state(state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=0, atol=1e-6)
    for a, b in zip(
        state,
        state_full,
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_output_shapes():
    m = CharRNN(ModelConfig(vocab_size=7, cell="lstm", embed=4, hidden=3, layers=2))
    logits, (h, c) = m(torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 5, 7)
    assert h.shape == c.shape == (2, 2, 3)


def test_one_hot_input_is_exact():
    torch.manual_seed(0)
    m = CharRNN(
        ModelConfig(vocab_size=6, cell="rnn", embed=0, hidden=4, layers=1, dropout=0, tie=False)
    )
    x = torch.tensor([[1, 5, 2]])
    out, _ = m.rnn(F.one_hot(x, 6).float())
    ref = m.head(out)
    torch.testing.assert_close(m(x)[0], ref)


def test_tied_output_shares_the_embedding_table():
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=9, cell="gru", embed=5, hidden=7, layers=1, dropout=0))
    x = torch.tensor([[1, 2, 3]])
    out, _ = m.rnn(m.embed(x))
    ref = m.proj(out) @ m.embed.weight.T + m.out_bias
    torch.testing.assert_close(m(x)[0], ref)
    with pytest.raises(UsageError, match="--tie"):
        ModelConfig(vocab_size=9, embed=0, tie=True)


def test_bad_config_values():
    with pytest.raises(UsageError, match="--cell"):
        ModelConfig(vocab_size=5, cell="transformer")
    with pytest.raises(UsageError, match="--dropout"):
        ModelConfig(vocab_size=5, dropout=1.0)


def test_tiny_model_overfits_tiny_corpus():
    torch.manual_seed(0)
    text = "abcdabcdabcd" * 8
    ids = torch.tensor([ord(c) - ord("a") for c in text])
    m = CharRNN(ModelConfig(vocab_size=4, cell="gru", embed=8, hidden=16, layers=1, dropout=0))
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    x, y = ids[:-1].view(1, -1), ids[1:].view(1, -1)
    for _ in range(60):
        loss = F.cross_entropy(m(x)[0].flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.exp(loss).item() < 1.1


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_scratch_one_hot_gather_equals_scratch_dense(cell):
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=13, cell=cell, embed=0, hidden=6, layers=1, tie=False, impl="scratch"
    )
    m = CharRNN(cfg).double().eval()
    x = torch.randint(13, (3, 7))
    out, _ = m.rnn(F.one_hot(x, 13).double())
    torch.testing.assert_close(m(x)[0], m.head(out), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_one_hot_gather_equals_dense_one_hot_matmul(cell):
    """--embed 0 computes one_hot(x) @ W_ih.T as a row gather: same values, same gradients."""
    torch.manual_seed(0)
    m = CharRNN(
        ModelConfig(vocab_size=13, cell=cell, embed=0, hidden=6, layers=1, dropout=0, tie=False)
    )
    m.double()
    x = torch.randint(13, (3, 7))
    h0 = torch.randn(1, 3, 6, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if cell == "lstm" else (h0,)
    assert m.path == "one_hot_gather"
    fast, fast_state = m(x, state)
    out, dense_state = m.rnn(F.one_hot(x, 13).double(), state if cell == "lstm" else h0)
    dense = m.head(out)
    torch.testing.assert_close(fast, dense, rtol=1e-12, atol=1e-12)
    dense_state = dense_state if cell == "lstm" else (dense_state,)
    for a, b in zip(fast_state, dense_state, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g_fast = torch.autograd.grad(fast.square().sum(), list(m.parameters()))
    g_dense = torch.autograd.grad(dense.square().sum(), list(m.parameters()))
    for a, b in zip(g_fast, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("embed,layers", [(8, 2), (0, 1)])  # torch's module; the gathered path
def test_weight_drop_masks_the_recurrent_weights_in_training_only(embed, layers):
    from charlm.config import ModelConfig
    from charlm.models.charrnn import CharRNN

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, cell="lstm", embed=embed, hidden=16, layers=layers,
                      dropout=0.0, tie=False, weight_drop=0.5)  # fmt: skip
    net = CharRNN(cfg)
    plain = CharRNN(ModelConfig(**{**cfg.__dict__, "weight_drop": 0.0}))
    plain.load_state_dict(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randint(0, 11, (3, 7))
    net.train()
    a, _ = net(x)
    b, _ = net(x)
    assert not torch.allclose(a, b)  # a fresh mask each forward
    a.sum().backward()
    assert net.rnn.weight_hh_l0.grad is not None and net.rnn.weight_hh_l0.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    net.eval()
    plain.eval()
    assert torch.allclose(net(x)[0], plain(x)[0], atol=1e-6)  # no mask when scoring


def test_weight_drop_is_refused_with_the_scratch_cells():
    from charlm.config import ModelConfig
    from charlm.errors import UsageError

    with pytest.raises(UsageError, match="--weight-drop needs --impl torch"):
        ModelConfig(vocab_size=5, impl="scratch", weight_drop=0.2)
