"""train --init-from: the corpus's vocabulary (or the union), the base's weights on it, lineage,
refusals, resume, the names of shipped bases, and when a run starts from the base by itself."""

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
from charlm.training import init_from
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


@pytest.mark.parametrize("embed,tie", [(8, True), (0, False)])
def test_fit_state_finds_each_characters_row_by_the_character_not_the_id(embed, tie):
    tokens = [UNK, *"天地人山水"]
    cfg = ModelConfig(vocab_size=6, cell="lstm", embed=embed, hidden=12, layers=1, tie=tie)
    base = _base(cfg, tokens)
    vocab = Vocab([UNK, "水", "你", "天", "人", "我"])  # the corpus's: as many, in its order
    state = fit_state(base, vocab, cfg)
    CharRNN(cfg).load_state_dict(state)
    name, d = ("embed.weight", 0) if embed else ("rnn.weight_ih_l0", 1)
    t, new = base.state[name], state[name]
    for i, c in enumerate(vocab.tokens):
        want = t.select(d, tokens.index(c)) if c in tokens else t.mean(d)
        assert torch.allclose(new.select(d, i), want), c


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


def test_a_fine_tuned_run_has_the_corpus_vocabulary_and_records_its_lineage(runner, ck):
    r = _tune(runner, ck, "b", "--init-from", "a", "--max-steps", "20")
    assert r.exit_code == 0, r.output
    assert "starts from a (gru 1x32, the base's architecture: sizing skipped)" in r.stderr
    base = checkpoint.load(ck / "a" / "best.pt")
    tuned = checkpoint.load(ck / "b" / "best.pt")
    n = len(base["vocab"])
    train = NEW_TEXT[: int(len(NEW_TEXT) * 0.9)]
    assert set(tuned["vocab"][1:]) <= set(train) and {"h", "o", "霜", "曲"} <= set(tuned["vocab"])
    assert "雨" not in tuned["vocab"]  # the base's, never in this text
    kept = _tune(runner, ck, "b2", "--init-from", "a", "--max-steps", "5", "--keep-base-chars")
    assert kept.exit_code == 0, kept.output
    union = checkpoint.load(ck / "b2" / "best.pt")["vocab"]
    assert union[:n] == base["vocab"] and {"h", "o", "霜", "曲"} <= set(union[n:])
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


@pytest.mark.parametrize(
    ("speed", "extra", "text", "from_base"),
    [
        (1e9, {}, "zh", True),  # read thousands of times over, Chinese: the shipped base
        (1e9, {"init_from": "none"}, "zh", False),  # none: from scratch
        (1e9, {"hidden": 64}, "zh", False),  # a size given: the run's own network
        (1e9, {"dropout": 0.2}, "zh", True),  # regularisation is not architecture
        (1.0, {}, "zh", False),  # short of compute: the sizing rule's network
        (1e9, {}, "en", False),  # a text the base does not know
    ],
)
def test_a_budgeted_run_on_a_small_chinese_text_starts_from_the_shipped_base(
    monkeypatch, tmp_path, speed, extra, text, from_base
):
    import charlm.training.sizing
    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare

    monkeypatch.setattr(charlm.training.sizing, "measure_speed", lambda *_: speed)
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_text(10) if text == "zh" else "hello world, hold the line\n" * 80,
                      encoding="utf-8")  # fmt: skip
    opts = TrainOptions(corpus=str(corpus), batch_size=4, seq_len=8, max_time=10.0, **extra)
    setup = prepare(opts, tmp_path / "ck", torch.device("cpu"), echo=lambda s: None)
    said = any(n.startswith("starts from the shipped Chinese base") for n in setup.notes)
    assert said == from_base and (setup.base is not None) == from_base
    if from_base:
        assert setup.base["name"] == "builtin:zh" and setup.model_config.hidden == 512
        assert setup.model_config.vocab_size == len(setup.data.vocab)  # the text's characters
        tc = setup.train_config
        assert tc.weight_decay == 0.01 and tc.warmup == 20  # fine-tuning's, not the corpus rule's
        assert setup.model_config.dropout == extra.get("dropout", setup.model_config.dropout)
        CharRNN(setup.model_config).load_state_dict(setup.init_state)
    else:
        assert setup.init_state is None and setup.model_config.hidden != 512


def test_coverage_counts_characters_whitespace_aside():
    vocab = Vocab([UNK, " ", "天", "x"])
    counts = torch.tensor([5, 100, 9, 1])  # unknown and spaces do not count
    assert init_from.covers(Vocab([UNK, "天"]), vocab, counts) == 0.9


def test_the_base_is_taken_on_the_sized_networks_passes_and_its_own_are_reported(
    monkeypatch, tmp_path
):
    """Short of text for the network sizing picks, the base starts the run even where it,
    bigger and slower, reads the text fewer times; the rules after sizing read its passes."""
    import charlm.training.sizing
    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare

    def speed(m, *_):  # the base (512 units) reads 10 x 0.8 x 10 s = 80 chars: < 1 pass
        return 10.0 if m.hidden == 512 else 1e9

    monkeypatch.setattr(charlm.training.sizing, "measure_speed", speed)
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_text(10), encoding="utf-8")
    opts = TrainOptions(corpus=str(corpus), batch_size=4, seq_len=8, max_time=10.0)
    setup = prepare(opts, tmp_path / "ck", torch.device("cpu"), echo=lambda s: None)
    assert setup.base is not None and setup.model_config.hidden == 512
    note = next(n for n in setup.notes if n.startswith("starts from the shipped Chinese base"))
    assert "reads this text 0 times over" in note
    tc = setup.train_config  # the many-passes rule (8 networks, no decay) does not apply
    assert tc.members != 8 and tc.decay > 0


def test_keep_base_chars_without_a_base_is_refused():
    from charlm.errors import UsageError
    from charlm.training.options import TrainOptions

    with pytest.raises(UsageError, match="needs --init-from"):
        TrainOptions(keep_base_chars=True)
    TrainOptions(keep_base_chars=True, init_from="zh")  # with one, kept


def test_a_shipped_base_is_found_by_name_when_the_package_has_moved(tmp_path):
    """A run started from builtin:zh records the package's path; a new environment puts the
    package elsewhere, and a new member still starts from the same base (its digest checked)."""
    from charlm.config import TrainConfig
    from charlm.training.options import TrainOptions
    from charlm.training.setup import _base_again

    base = init_from.load_base("builtin:zh", tmp_path)
    record = {**base.record, "path": str(tmp_path / "gone" / "zh_base.pt")}
    vocab = Vocab([UNK, *"春风明月"])
    cfg = init_from.model_config_for(base, vocab, TrainOptions())
    state = _base_again(record, vocab, cfg, TrainConfig(members=2, max_time=60), tmp_path)
    assert torch.equal(state["rnn.weight_hh_l0"], base.state["rnn.weight_hh_l0"])
    with pytest.raises(Exception, match="has changed"):
        _base_again(
            {**record, "digest": "0" * 64},
            vocab,
            cfg,
            TrainConfig(members=2, max_time=60),
            tmp_path,
        )


def test_a_run_that_adds_no_network_resumes_with_its_base_deleted(runner, ck, tmp_path):
    shutil.copytree(ck / "a", tmp_path / "base")  # a base of its own, deleted below
    (tmp_path / "new.txt").write_text(NEW_TEXT, encoding="utf-8")
    r = _tune(runner, tmp_path, "tuned", "--init-from", str(tmp_path / "base" / "best.pt"),
              "--max-steps", "10")  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = checkpoint.load(tmp_path / "tuned" / "best.pt")["base"]
    assert Path(rec["path"]).is_absolute()  # recorded whole: resumable from any folder
    shutil.rmtree(tmp_path / "base")
    # no --max-time: no network is ever added, so the base is not needed to go on
    again = invoke(runner, ["train", "--run", "tuned", "--resume", "--checkpoint-dir", tmp_path,
                            "--max-steps", "20"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert checkpoint.load(tmp_path / "tuned" / "last.pt")["progress"]["step"] == 20
