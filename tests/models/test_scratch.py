"""The from-scratch cells: same outputs as torch's modules, hand gradients = autograd's."""

import pytest
import torch
from torch import nn

from charlm.config import ModelConfig
from charlm.models.charrnn import TORCH_MODULES as TORCH
from charlm.models.charrnn import CharRNN
from charlm.models.scratch import ScratchRNN, layer_forward


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_matches_torch_module_with_copied_weights(cell, layers):
    torch.manual_seed(0)
    ref = TORCH[cell](4, 5, num_layers=layers, batch_first=True).double()
    ours = ScratchRNN(cell, 4, 5, layers).double()
    ours.copy_from_torch(ref)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    h0 = torch.randn(layers, 2, 5, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if cell == "lstm" else (h0,)
    out_r, st_r = ref(x, state if cell == "lstm" else h0)
    st_r = st_r if cell == "lstm" else (st_r,)  # torch's bare h -> charlm's tuple state
    out_o, st_o = ours(x, state)
    torch.testing.assert_close(out_o, out_r)
    assert len(st_o) == len(st_r)
    for a, b in zip(st_o, st_r, strict=True):
        torch.testing.assert_close(a, b)
    # gradients through everything match torch's too
    (out_r.sum() + st_r[0].square().sum()).backward()
    (out_o.sum() + st_o[0].square().sum()).backward()
    torch.testing.assert_close(ours.W_x_l0.grad, ref.weight_ih_l0.grad.T)
    torch.testing.assert_close(ours.W_h_l0.grad, ref.weight_hh_l0.grad.T)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_hand_backward_passes_gradcheck(cell):
    torch.manual_seed(0)
    N, T, D, H = 2, 3, 4, 5
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell] * H
    d = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(N, T, D, **d)
    h0 = torch.randn(N, H, **d)
    c0 = torch.randn(N, H, **d)
    params = [torch.randn(D, G, **d) * 0.5, torch.randn(H, G, **d) * 0.5, torch.randn(G, **d)]
    if cell == "gru":
        params.append(torch.randn(H, **d))

    def f(x, h0, c0, *p):
        state = (h0, c0) if cell == "lstm" else (h0,)
        out, s = layer_forward(cell, x, state, *p)
        # use every output, including the carried state, so every backward path is checked
        extra = sum((t * (2 + k)).sum() for k, t in enumerate(s))
        return (
            out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        ).sum() + extra

    inputs = (x, h0, c0, *[p.detach().requires_grad_() for p in params])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_scratch_charrnn_trains_and_chunks_equal_full():
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=7, cell="lstm", embed=4, hidden=6, layers=2, dropout=0, impl="scratch"
    )
    m = CharRNN(cfg).eval()
    x = torch.randint(7, (2, 9))
    full, _ = m(x)
    a, s = m(x[:, :4])
    b, _ = m(x[:, 4:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    m.train()
    loss = nn.functional.cross_entropy(m(x)[0].flatten(0, 1), x.flatten())
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())
