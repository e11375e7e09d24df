"""train --init-from: the union vocabulary, the base's weights on it, lineage, refusals, resume,
and the names of shipped bases."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from charlm.config import ModelConfig
from charlm.data.vocab import UNK, Vocab
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint
from charlm.system.distributed import SINGLE
from charlm.training.init_from import BaseNetwork, fit_state, union_vocab
from charlm.training.progress import TrainState
from tests.conftest import TINY_TRAIN, invoke, tiny_text

# a text that shares most characters with tiny_text() and adds Latin letters and two new ones
NEW_TEXT = tiny_text(20).replace("雨", "霜").replace("歌", "曲") + "hello world\n" * 40


def _base(cfg: ModelConfig, tokens: list[str]) -> BaseNetwork:
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in CharRNN(cfg).state_dict().items()}
    return BaseNetwork(state, cfg, Vocab(tokens), {"name": "b", "digest": "d"})


def test_the_union_keeps_the_bases_ids_and_appends_the_new_characters_in_order():
    base = Vocab([UNK, "天", "地", "人"])
    own = Vocab([UNK, "你", "人", "我", "天"])
    u = union_vocab(base, own)
    assert u.tokens == [UNK, "天", "地", "人", "你", "我"]
    assert all(u.id_of(c) == base.id_of(c) for c in "天地人")


@pytest.mark.parametrize("embed,tie", [(8, True), (8, False), (0, False)])
def test_fit_state_keeps_the_bases_rows_and_starts_new_ones_at_its_average(embed, tie):
    tokens = [UNK, *"天地人山水"]
    cfg = ModelConfig(vocab_size=6, cell="gru", embed=embed, hidden=12, layers=1, tie=tie)
    base = _base(cfg, tokens)
    vocab = Vocab([*tokens, "你", "我"])
    new_cfg = ModelConfig(**{**cfg.__dict__, "vocab_size": 8})
    state = fit_state(base, vocab, new_cfg)
    net = CharRNN(new_cfg)
    net.load_state_dict(state)  # every shape fits the grown model
    grown = 0
    for name, t in base.state.items():
        new = state[name]
        if new.shape == t.shape:
            assert torch.equal(new, t), name  # nothing but the vocabulary's tensors changes
            continue
        grown += 1
        d = next(i for i, (a, b) in enumerate(zip(t.shape, new.shape, strict=True)) if a != b)
        assert new.shape[d] == 8 and torch.equal(new.narrow(d, 0, 6), t), name
        added = new.narrow(d, 6, 2)
        avg = t.median(d, keepdim=True).values if t.dim() == 1 else t.mean(d, keepdim=True)
        assert torch.allclose(added, avg.expand_as(added)), name
    assert grown >= 2  # the input side and the output side


def test_a_new_network_starts_from_the_init_state():
    cfg = ModelConfig(vocab_size=6, cell="lstm", embed=8, hidden=12, layers=1)
    from charlm.config import TrainConfig

    base = _base(cfg, [UNK, *"天地人山水"])
    s = TrainState(cfg, TrainConfig(seed=5), torch.device("cpu"), SINGLE, init_state=base.state)
    assert all(torch.equal(v, base.state[k]) for k, v in s.model.state_dict().items())
    s.start_member()  # a member of a fine-tuning run starts from the base too
    assert all(torch.equal(v, base.state[k]) for k, v in s.model.state_dict().items())


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """A tiny base run `a`, and a text with new characters beside it."""
    from tests.conftest import train_tiny

    ck = tmp_path_factory.mktemp("init")
    train_tiny(ck, "a", *TINY_TRAIN, "--max-steps", "20")
    (ck / "new.txt").write_text(NEW_TEXT, encoding="utf-8")
    return ck


def _tune(runner, ck, run, *extra):
    return invoke(runner, ["train", "--corpus", ck / "new.txt", "--run", run,
                           "--checkpoint-dir", ck, "--eval-every", "10", "--batch-size", "8",
                           "--seq-len", "16", "--seed", "2", *extra])  # fmt: skip


def test_a_fine_tuned_run_keeps_the_bases_vocabulary_and_records_its_lineage(runner, ck):
    r = _tune(runner, ck, "b", "--init-from", "a", "--max-steps", "20")
    assert r.exit_code == 0, r.output
    assert "starts from a (gru 1x32, the base's architecture: sizing skipped)" in r.stderr
    base = checkpoint.load(ck / "a" / "best.pt")
    tuned = checkpoint.load(ck / "b" / "best.pt")
    n = len(base["vocab"])
    assert tuned["vocab"][:n] == base["vocab"] and {"h", "o", "霜", "曲"} <= set(tuned["vocab"][n:])
    assert tuned["model_config"]["hidden"] == 32  # the base's size, not the sizing rule's
    assert tuned["train_config"]["weight_decay"] == 0.01 and tuned["train_config"]["warmup"] == 20
    rec = tuned["base"]
    assert rec["name"] == "a" and rec["digest"] == base["digest"]
    assert rec["fingerprint"] == base["corpus"]["fingerprint"] and rec["lineage"] == ["a"]
    info = invoke(runner, ["info", "--checkpoint", "b", "--checkpoint-dir", ck])
    assert f"started from a ({ck / 'a' / 'best.pt'}, digest {base['digest'][:12]}" in info.stdout
    runs = invoke(runner, ["runs", "--checkpoint-dir", ck, "--json"])
    rows = {d["name"]: d for d in map(json.loads, runs.stdout.splitlines())}
    assert rows["b"]["base"] == "a" and rows["a"]["base"] == ""
    # and it generates the new text's characters
    g = invoke(runner, ["generate", "--checkpoint", "b", "--checkpoint-dir", ck,
                        "--prefix", "hel", "--length", "20", "--seed", "1"])  # fmt: skip
    assert g.exit_code == 0 and g.stdout.startswith("hel")


def test_a_fine_tuning_run_resumes_like_any_other(runner, ck):
    assert _tune(runner, ck, "c", "--init-from", "a", "--max-steps", "10").exit_code == 0
    r = invoke(runner, ["train", "--run", "c", "--resume", "--checkpoint-dir", ck,
                        "--max-steps", "20"])  # fmt: skip
    assert r.exit_code == 0, r.output
    p = checkpoint.load(ck / "c" / "last.pt")
    assert p["progress"]["step"] == 20 and p["base"]["name"] == "a"
    both = invoke(runner, ["train", "--run", "c", "--resume", "--init-from", "a",
                           "--checkpoint-dir", ck])  # fmt: skip
    assert both.exit_code == 2 and "drop --init-from" in both.stderr


def test_a_size_that_differs_from_the_bases_is_refused_before_anything_is_made(runner, ck):
    r = _tune(runner, ck, "d", "--init-from", "a", "--hidden", "64")
    assert r.exit_code == 2 and "--hidden 64 differs from the base's hidden 32" in r.stderr
    assert not (ck / "d").exists()
    missing = _tune(runner, ck, "d", "--init-from", "nope")
    assert missing.exit_code == 4 and not (ck / "d").exists()


def test_shipped_names_and_a_users_run_of_the_same_name(runner, ck, tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(ck / "a" / "best.pt", assets / "zh_base.pt")
    monkeypatch.setattr(checkpoint, "ASSETS", assets)
    own = tmp_path / "own"
    shutil.copytree(ck, own, ignore=shutil.ignore_patterns(".cache"))
    assert checkpoint.resolve("zh", own) == assets / "zh_base.pt"  # no run of that name: shipped
    r = invoke(runner, ["train", "--corpus", own / "new.txt", "--run", "e", "--init-from",
                        "zh", "--checkpoint-dir", own, "--max-steps", "10",
                        "--eval-every", "10"])  # fmt: skip
    assert r.exit_code == 0, r.output
    shutil.copytree(own / "e", own / "zh")  # now a run of the user's is named zh: it wins
    assert checkpoint.resolve("zh", own) == own / "zh" / "best.pt"
    assert checkpoint.resolve("builtin:zh", own) == assets / "zh_base.pt"
    assert "builtin:zh" in checkpoint.shadow_note("zh", own)
    bad = invoke(runner, ["generate", "--checkpoint", "builtin:xx", "--checkpoint-dir", own])
    assert bad.exit_code == 4 and "builtin:zh" in bad.stderr
    monkeypatch.setattr(checkpoint, "ASSETS", tmp_path / "nowhere")
    gone = invoke(runner, ["generate", "--checkpoint", "builtin:zh", "--checkpoint-dir", own])
    assert gone.exit_code == 4 and "missing from this install" in gone.stderr


def test_a_folder_here_without_a_checkpoint_does_not_hide_a_run(tmp_path, monkeypatch):
    own = tmp_path / "checkpoints"
    (own / "kjv").mkdir(parents=True)
    (own / "kjv" / "best.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kjv").mkdir()  # a corpus unzipped here
    assert checkpoint.resolve("kjv", own) == own / "kjv" / "best.pt"
    (tmp_path / "kjv" / "best.pt").write_bytes(b"y")  # a run folder of its own: it wins
    assert checkpoint.resolve("kjv", own) == Path("kjv") / "best.pt"
