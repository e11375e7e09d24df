import pytest
import torch

from charlm import checkpoint
from charlm.config import ModelConfig
from charlm.errors import CheckpointError
from charlm.model import CharRNN
from charlm.vocab import Vocab


@pytest.fixture
def saved(tmp_path):
    vocab = Vocab.build("分开不了")
    cfg = ModelConfig(vocab_size=len(vocab), cell="lstm", embed=4, hidden=6, layers=2)
    torch.manual_seed(0)
    model = CharRNN(cfg)
    path = tmp_path / "best.pt"
    checkpoint.save(checkpoint.build_payload(model, cfg, vocab, {"metrics": {"x": 1.5}}), path)
    return path, model


def test_round_trip(saved):
    path, model = saved
    payload = checkpoint.load(path)
    restored, vocab, cfg = checkpoint.restore_model(payload, str(path))
    assert vocab.tokens[1:] and cfg.cell == "lstm"
    for (k, a), (_, b) in zip(
        model.state_dict().items(), restored.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert payload["metrics"] == {"x": 1.5}
    assert not list(path.parent.glob(".*tmp*"))  # no temporary file left


def test_only_plain_data_inside(saved):
    path, _ = saved
    # weights_only=True is the whole contract: this must load with nothing allow-listed.
    torch.load(path, map_location="cpu", weights_only=True)


def test_flipped_byte_is_detected(saved):
    path, _model = saved
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["model_state"]))
    payload["model_state"][name].view(-1)[0] += 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="digest"):
        checkpoint.load(path)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_payload_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(path)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, not a checkpoint\n", b"PK\x03\x04truncated"],
    ids=["empty", "text", "truncated-zip"],
)
def test_garbage_files(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)


def test_truncated_real_checkpoint(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="bytes"):
        checkpoint.load(path)


def test_foreign_pt_and_newer_version(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, p)
    with pytest.raises(CheckpointError, match="missing"):
        checkpoint.load(p)
    torch.save(torch.zeros(3), p)
    with pytest.raises(CheckpointError, match="not a charlm checkpoint"):
        checkpoint.load(p)


def test_newer_format_and_shape_mismatch(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format_version 99"):
        checkpoint.load(path)
    payload["format_version"] = 1
    payload["model_config"]["hidden"] = 7
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.restore_model(checkpoint.load(path), str(path))


def test_failed_save_keeps_previous_file(saved, monkeypatch):
    path, _model = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    from charlm.errors import ResourceError

    with pytest.raises(ResourceError, match="disk full"):
        checkpoint.save({"x": 1}, path)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*tmp*"))
