import pytest
import torch

from charlm.errors import UsageError
from charlm.system.runtime import auto_precision, bf16_supported, choose_device, make_generator


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


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    assert bf16_supported(torch.device("cpu")) is native
    assert auto_precision(torch.device("cpu")) == ("bf16" if native else "fp32")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: native)
    assert auto_precision(torch.device("cuda")) == ("bf16" if native else "fp32")
    assert auto_precision(torch.device("mps")) == "fp32"


def test_make_generator_is_a_seeded_cpu_generator():
    g = make_generator(3)
    assert g.device.type == "cpu" and g.initial_seed() == 3
