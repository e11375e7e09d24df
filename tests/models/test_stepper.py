import pytest
import torch

from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN
from charlm.models.stepper import Stepper


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize(
    ("impl", "embed", "layers", "cutoffs"),
    [("torch", 5, 2, ()), ("torch", 0, 1, ()), ("torch", 0, 2, ()), ("scratch", 5, 2, ()),
     ("torch", 5, 1, (2, 5)), ("torch", 0, 1, (3,))],  # a two-level softmax, tied and not
)  # fmt: skip
def test_steps_equal_the_full_forward(cell, impl, embed, layers, cutoffs):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=9, cell=cell, embed=embed, hidden=6, layers=layers, dropout=0.3,
                      tie=embed > 0, impl=impl, cutoffs=cutoffs)  # fmt: skip
    m = CharRNN(cfg).eval()
    x = torch.randint(9, (3, 8))
    full, _ = m(x)
    logits, state = m(x[:, :2])
    step = Stepper(m)
    state = Stepper.split(state)
    outs = [logits[:, -1]]
    for t in range(2, 8):
        logit, state = step.step(x[:, t], state)
        outs.append(logit)
    # logits up to a constant a row: a two-level model's stepper leaves its head unnormalised
    got = torch.log_softmax(torch.stack(outs[:-1], 1), -1)
    torch.testing.assert_close(got, torch.log_softmax(full[:, 1:7], -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_steps_stay_close(dtype):
    torch.manual_seed(0)
    m = CharRNN(
        ModelConfig(vocab_size=9, cell="lstm", embed=5, hidden=6, layers=2, dropout=0)
    ).eval()
    x = torch.randint(9, (2, 4))
    _, state = m(x)
    ref, _ = Stepper(m).step(x[:, -1], Stepper.split(state))
    half = Stepper(m, dtype)
    got, _ = half.step(x[:, -1], half.cast_states(Stepper.split(state)))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0.05)
