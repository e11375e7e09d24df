import json
from pathlib import Path

import pytest
import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint


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


@pytest.fixture(scope="module")
def run_last(tmp_path_factory):
    """A real last.pt with every part: vocabulary, count model, optimizer, progress, carry."""
    from charlm.config import TrainConfig
    from charlm.data.ids_cache import encode_text
    from charlm.store.run_folder import RunFolder
    from charlm.training.loop import Trainer
    from charlm.training.setup import run_data

    from ..conftest import tiny_text

    path = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(batch_size=4, seq_len=8, max_steps=6, eval_every=3, kn_order=3,
                      sampler="consecutive", seed=1)  # fmt: skip
    text = encode_text(tiny_text(), "f", 0.1, None)
    data = run_data(text, {"source": "tiny", "fingerprint": "f"}, cfg)
    mcfg = ModelConfig(vocab_size=len(data.vocab), cell="lstm", embed=4, hidden=6)
    Trainer(mcfg, cfg, data, RunFolder(path), torch.device("cpu"), previews=[]).run()
    return path / "last.pt"


def _damaged(payload, part):
    if part == "vocab":
        payload["vocab"][5], payload["vocab"][6] = payload["vocab"][6], payload["vocab"][5]
    elif part == "kn tables":
        payload["kn"]["counts"][2][3] += 1
    elif part == "mix weight":
        payload["kn"]["weight"] = 0.5
    elif part == "optimizer":
        state = payload["optimizer_state"]["state"]
        state[0]["exp_avg"].view(-1)[0] += 1.0
    elif part == "progress":
        payload["progress"]["batch_in_epoch"] += 1
    elif part == "rng":
        payload["progress"]["rng"]["batch_epoch_start"][100] ^= 1
    elif part == "carry":
        payload["carry"][0].view(-1)[0] += 1.0
    elif part == "config":
        payload["model_config"]["dropout"] = 0.1
    elif part == "train config":
        payload["train_config"]["lr"] = 1.0
    else:
        raise AssertionError(part)


PARTS = ["vocab", "kn tables", "mix weight", "optimizer", "progress", "rng", "carry", "config",
         "train config"]  # fmt: skip


@pytest.mark.parametrize("part", PARTS)
def test_damage_to_any_part_is_refused(run_last, tmp_path, part):
    payload = torch.load(run_last, weights_only=True)
    assert payload["format_version"] == checkpoint.FORMAT_VERSION and payload["kn"]
    _damaged(payload, part)
    path = tmp_path / "last.pt"
    torch.save(payload, path)  # the old digest kept: what a flipped byte on disk looks like
    with pytest.raises(CheckpointError, match="digest"):
        checkpoint.load(path)


def test_a_flipped_byte_in_any_stored_record_is_refused(run_last, tmp_path):
    """torch does not check the zip's CRCs: flip one byte inside each tensor record, and at
    several places in the pickle. A damaged tensor is always refused; a flip in the pickle is
    refused or changes nothing that is loaded (e.g. an unused memo index)."""
    import zipfile

    raw = run_last.read_bytes()
    original = checkpoint.load(run_last)
    with zipfile.ZipFile(run_last) as z:
        infos = [i for i in z.infolist() if i.file_size > 0 and "/data" in i.filename]
    tensors = 0
    for info in infos:
        # stored (uncompressed) members: the data starts after the local header, whose extra
        # field (torch's alignment padding) is not the central directory's
        head = raw[info.header_offset : info.header_offset + 30]
        start = info.header_offset + 30 + int.from_bytes(head[26:28], "little")
        start += int.from_bytes(head[28:30], "little")
        is_pickle = info.filename.endswith("data.pkl")
        spots = range(0, info.file_size, max(1, info.file_size // 40)) if is_pickle else [0]
        for spot in spots:
            damaged = bytearray(raw)
            damaged[start + spot] ^= 0x01
            path = tmp_path / "flip.pt"
            path.write_bytes(bytes(damaged))
            try:
                loaded = checkpoint.load(path)
            except CheckpointError:
                continue
            assert is_pickle, info.filename  # a damaged tensor must never load
            assert checkpoint.payload_digest(loaded) == checkpoint.payload_digest(original)
        tensors += not is_pickle
    assert tensors >= 20  # weights, optimizer moments, count tables, rng states, carry


def test_format_1_checkpoints_still_load(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    payload["digest"] = checkpoint.tensor_digest(payload["model_state"])
    torch.save(payload, path)
    assert checkpoint.load(path)["format_version"] == 1


FORMAT_1 = Path(__file__).parent / "data" / "format1"  # written by charlm at b355175^


def test_a_real_format_1_run_generates_evaluates_and_refuses_what_it_cannot(tmp_path):
    """A run written by the charlm of format 1 (tests/store/data/format1, trained on
    tiny_text() for 20 steps): it generates, evaluates and is listed; --adapt is refused
    with 2 and --resume with 4, as README says, and nothing in it changes."""
    import shutil

    from typer.testing import CliRunner

    from ..conftest import invoke, tiny_text

    ck = tmp_path / "ck"
    shutil.copytree(FORMAT_1, ck / "f1")
    before = {p.name: p.read_bytes() for p in (ck / "f1").iterdir()}
    corpus = tmp_path / "lyrics.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    runner = CliRunner()
    base = ["--checkpoint-dir", ck]
    gen = invoke(runner, ["generate", *base, "--checkpoint", "f1", "--prefix", "我",
                          "--length", "30", "--seed", "1"])  # fmt: skip
    assert gen.exit_code == 0, gen.stderr
    assert gen.stdout.startswith("我") and set(gen.stdout) <= set(tiny_text())
    ev = invoke(runner, ["evaluate", *base, "--checkpoint", "f1", "--corpus", corpus, "--json"])
    assert ev.exit_code == 0, ev.stderr
    assert checkpoint.load(ck / "f1" / "best.pt")["format_version"] == 1
    adapt = invoke(runner, ["generate", *base, "--checkpoint", "f1", "--adapt"])
    assert adapt.exit_code == 2 and "--adapt" in adapt.stderr
    resume = invoke(runner, ["train", *base, "--run", "f1", "--resume", "--corpus", corpus])
    assert resume.exit_code == 4 and "format 1" in resume.stderr
    listed = invoke(runner, ["runs", *base, "--json"])
    assert [json.loads(x)["steps"] for x in listed.stdout.splitlines()] == [20]
    assert {p.name: p.read_bytes() for p in (ck / "f1").iterdir()} == before


def _as_saved_on_cuda(src, dst) -> None:
    """A copy of a checkpoint whose tensors say they were saved from CUDA (what a GPU run
    writes), made by relabelling each storage's location in the pickle."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)


def test_a_checkpoint_saved_on_a_gpu_generates_on_a_cpu(tmp_path):
    from typer.testing import CliRunner

    from ..conftest import invoke, train_tiny

    ck = train_tiny(tmp_path, "g", "--max-steps", "3")
    gpu = tmp_path / "from-gpu.pt"
    _as_saved_on_cuda(ck / "g" / "best.pt", gpu)
    if not torch.cuda.is_available():  # plain torch.load cannot even read it here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu, weights_only=True)
    args = ["generate", "--length", "30", "--seed", "2", "--checkpoint"]
    on_cpu = invoke(CliRunner(), [*args, ck / "g" / "best.pt"])
    moved = invoke(CliRunner(), [*args, gpu])
    assert moved.exit_code == 0, moved.output
    assert moved.stdout == on_cpu.stdout and len(moved.stdout) > 10


def test_a_file_replaced_while_it_loads_is_read_again_not_called_damaged(saved, monkeypatch):
    """torch.load(mmap=True) opens the file by name twice; a trainer's os.replace in between
    gives a mix of two checkpoints. Simulated: the first load returns such a mix while the file
    is replaced under it; the loader sees the file change and reads it again."""
    path, *_ = saved
    newer = checkpoint.load(path)
    newer = {**newer, "charlm_version": "newer"}
    newer["digest"] = checkpoint.payload_digest(newer)
    other = path.with_name("other.pt")
    checkpoint.save(newer, other)
    real, calls = torch.load, []

    def load_while_replaced(f, *args, **kwargs):
        calls.append(f)
        payload = real(f, *args, **kwargs)
        if len(calls) == 1:  # the old records, the new file's tensors: the digest disagrees
            other.replace(path)
            payload = {**payload, "digest": newer["digest"]}
        return payload

    monkeypatch.setattr(torch, "load", load_while_replaced)
    got = checkpoint.load(path)
    assert len(calls) == 2 and got["charlm_version"] == "newer"
