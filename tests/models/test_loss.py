"""The blocked cross-entropy equals torch's, in value and gradient, across block boundaries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from charlm.models import loss as loss_mod
from charlm.models.loss import cross_entropy


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 rows of 50 float32 per block: a batch of 37 rows ends on a partial block
    monkeypatch.setattr(loss_mod, "BLOCK_BYTES", 3 * 50 * 4)


def test_value_and_gradient_match_torch_in_float64(small_blocks: None) -> None:
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(37, 50, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randint(0, 50, (37,), generator=g)
    ours = cross_entropy(logits, y)
    (grad,) = torch.autograd.grad(ours * 2.5, logits)  # a scale from above flows through
    ref = F.cross_entropy(logits, y)
    (ref_grad,) = torch.autograd.grad(ref * 2.5, logits)
    assert ours.dtype == torch.float64
    assert torch.allclose(ours, ref, rtol=0, atol=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=0, atol=1e-12)
    z = logits.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cross_entropy(t, y), (z,))


def test_bf16_logits_give_a_float32_loss_and_a_bf16_gradient_like_torchs() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(200, 3000, generator=g).bfloat16().requires_grad_()
    y = torch.randint(0, 3000, (200,), generator=g)
    ours = cross_entropy(logits, y)
    ours.backward()
    grad, logits.grad = logits.grad, None
    ref = F.cross_entropy(logits.float(), y)  # what train_step computed before
    ref.backward()
    assert ours.dtype == torch.float32 and grad.dtype == torch.bfloat16
    assert abs(ours.item() - ref.item()) < 1e-5
    # equal but for a rounding step here and there
    assert float((grad.float() - logits.grad.float()).abs().max()) < 1e-6
    assert float((grad == logits.grad).float().mean()) > 0.999


def test_a_confident_right_answer_costs_nothing_and_extreme_logits_stay_finite(
    small_blocks: None,
) -> None:
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-50.0, 20.0, 20.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    out = cross_entropy(logits, y)
    out.backward()
    assert out.item() == pytest.approx(0.5 * math.log(2.0), rel=1e-6)
    assert torch.isfinite(logits.grad).all()
    # the second row splits its mass between two classes: gradient -1/2 and +1/2, halved
    assert torch.allclose(logits.grad[1], torch.tensor([0.0, -0.25, 0.25]))


def test_logits_within_one_block_take_torchs_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(loss_mod._BlockedCrossEntropy, "apply", lambda *a: calls.append(a))
    logits = torch.randn(64, 73).bfloat16()  # English: 64 x 73 float32 is one small block
    y = torch.randint(0, 73, (64,))
    out = cross_entropy(logits, y)
    assert not calls and out.dtype == torch.float32
    assert out.item() == pytest.approx(F.cross_entropy(logits.float(), y).item())
    cross_entropy(torch.randn(4096, 9403), torch.zeros(4096, dtype=torch.long))
    assert len(calls) == 1  # a Chinese vocabulary's batch is blocked
