"""The two-level softmax (ModelConfig.cutoffs): what the model returns is a distribution, and
the training loss (forward with targets) is exactly its cross-entropy, gradients included."""

import pytest
import torch

from charlm.config import ModelConfig
from charlm.errors import CheckpointError, UsageError
from charlm.models.charrnn import CharRNN, two_level, two_level_scores


def _model(tie: bool, cutoffs: tuple[int, ...], embed: int = 8) -> CharRNN:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, embed=embed, hidden=12, dropout=0.0, tie=tie,
                      cutoffs=cutoffs)  # fmt: skip
    return CharRNN(cfg)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("cutoffs", [(5,), (3, 11, 30)])
def test_log_probabilities_sum_to_one_and_the_loss_is_their_cross_entropy(tie, cutoffs):
    m = _model(tie, cutoffs)
    x, y = torch.randint(50, (3, 9)), torch.randint(50, (3, 9))
    y[0, :4] = torch.tensor([0, cutoffs[0], 49, cutoffs[-1] - 1])  # every level's edges
    logp, _ = m(x)  # (B, T, V)
    assert logp.dtype == torch.float32
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 9))
    want = -logp.gather(-1, y[..., None]).mean()
    got, _ = m(x, None, y)
    torch.testing.assert_close(got, want)
    params = list(m.parameters())
    for a, b in zip(torch.autograd.grad(want, params), torch.autograd.grad(got, params),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_full_softmax_loss_is_the_cross_entropy_of_its_logits():
    m = _model(True, ())
    x, y = torch.randint(50, (2, 7)), torch.randint(50, (2, 7))
    logits, _ = m(x)
    want = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    torch.testing.assert_close(m(x, None, y)[0], want)


def test_a_batch_without_rare_targets_still_trains_every_weight_it_used():
    m = _model(True, (10,))
    x, y = torch.randint(50, (2, 6)), torch.randint(10, (2, 6))  # all in the head
    loss, _ = m(x, None, y)
    loss.backward()
    assert m.cluster.weight.grad is not None and torch.isfinite(loss)


def test_temperature_on_log_probabilities_is_temperature_on_logits():
    """Consumers divide what the model returns by a temperature and take a softmax: for the
    two-level model that must equal the same temperature on its (unnormalised) scores."""
    m = _model(True, (4, 20))
    logp, _ = m(torch.randint(50, (1, 5)))
    shifted = logp + torch.randn(1, 5, 1)  # logits are logp up to a constant a row
    torch.testing.assert_close(torch.softmax(logp / 0.7, -1), torch.softmax(shifted / 0.7, -1))


@pytest.mark.parametrize("cutoffs", [(0,), (5, 5), (9, 3), (50,)])
def test_cutoffs_must_be_increasing_ids_inside_the_vocabulary(cutoffs):
    with pytest.raises(UsageError, match="cutoffs"):
        ModelConfig(vocab_size=50, cutoffs=cutoffs)


def test_cutoffs_from_a_checkpoint_list_and_bad_ones_as_a_checkpoint_error():
    assert ModelConfig.from_dict({"vocab_size": 50, "cutoffs": [4, 20]}).cutoffs == (4, 20)
    assert ModelConfig.from_dict({"vocab_size": 50}).cutoffs == ()  # checkpoints before them
    with pytest.raises(CheckpointError, match="cutoffs"):
        ModelConfig.from_dict({"vocab_size": 50, "cutoffs": [60]})


def test_without_gradients_the_same_distribution():
    """Generation (no_grad) normalises in place; dynamic evaluation (with gradients) not."""
    m = _model(True, (3, 11, 30))
    x = torch.randint(50, (2, 7))
    with_grad, _ = m(x)
    with torch.no_grad():
        without, _ = m(x)
    torch.testing.assert_close(without, with_grad.detach())


@pytest.mark.parametrize("rows", [4, 20])  # both ways: few rows, many
@pytest.mark.parametrize("far", [0.0, 300.0])  # 300: a cluster far below the tail's maximum
def test_generation_scores_give_the_same_distribution(far, rows):
    torch.manual_seed(3)
    cutoffs, v = (3, 6, 9), 12
    level = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    z, zc = torch.randn(rows, v) * 3, torch.randn(rows, 3)
    z[:, 6:9] -= far  # cluster 2's scores underflow a shared shift: the exact path takes over
    tail = level[3:] - 1
    member = torch.nn.functional.one_hot(tail, 3).float().t().contiguous()  # (K, V - k)
    want = two_level(z.clone(), zc, cutoffs, level)
    got = torch.log_softmax(two_level_scores(z.clone(), zc, cutoffs, tail, member), -1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got).all()
