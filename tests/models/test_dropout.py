import pytest
import torch

from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN
from charlm.models.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.6])
def test_mask_keeps_one_minus_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, p)
    kept = y != 0
    # 400k Bernoulli draws: the standard error of the share is under 0.001
    assert abs(float(kept.float().mean()) - (1 - p)) < 0.004
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)), rtol=1e-4)
    assert abs(float(y.mean()) - 1.0) < 0.01  # the expectation is kept


def test_elements_are_dropped_independently():
    torch.manual_seed(1)
    kept = dropout(torch.ones(200_000), 0.5) != 0
    a, b = kept[:-1].float(), kept[1:].float()  # neighbours, and the 4 lanes of one draw
    assert abs(float((a * b).mean()) - 0.25) < 0.006
    lanes = kept.view(-1, 4).float().mean(dim=0)
    assert torch.all((lanes - 0.5).abs() < 0.01)


def test_gradient_goes_through_the_same_mask():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() / x.detach()).where(y != 0, 0.0))


def test_off_in_eval_and_at_zero_and_seeded():
    x = torch.randn(10, 7)
    m = Dropout(0.4)
    m.eval()
    assert m(x) is x
    assert dropout(x, 0.0) is x
    torch.manual_seed(3)
    a = dropout(x, 0.4)
    torch.manual_seed(3)
    torch.testing.assert_close(dropout(x, 0.4), a)  # the global generator: seeds and resume


def test_charrnn_trains_with_it_and_is_deterministic_in_eval():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=9, cell="lstm", embed=4, hidden=6, layers=1, dropout=0.5,
                      weight_drop=0.3, tie=True)  # fmt: skip
    m = CharRNN(cfg)
    x = torch.randint(9, (3, 10))
    m.train()
    assert not torch.equal(m(x)[0], m(x)[0])  # a new mask each forward
    m.eval()
    torch.testing.assert_close(m(x)[0], m(x)[0])
