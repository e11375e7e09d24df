import pytest
import torch

from charlm.errors import UsageError
from charlm.runtime import auto_precision, choose_device, make_generator


def test_auto_device_and_absent_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("auto").type in ("cpu", "mps")
    assert choose_device("cpu").type == "cpu"
    with pytest.raises(UsageError, match="--device cuda"):
        choose_device("cuda")
    with pytest.raises(UsageError, match="--device must be"):
        choose_device("tpu")


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto").type == "cuda"


def test_auto_precision_and_generators():
    assert auto_precision(torch.device("cpu")) in ("bf16", "fp32")
    assert auto_precision(torch.device("mps")) == "fp32"
    a, b = make_generator(3), make_generator(3)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
