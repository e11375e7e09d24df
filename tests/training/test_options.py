"""training: options and presets (options.py), the sizing rule (sizing.py), run names
(setup.py), what --resume refuses (resume.py)."""

from dataclasses import fields

import pytest

from charlm.config import ModelConfig, TrainConfig
from charlm.errors import CheckpointError, UsageError
from charlm.training.options import (
    PRESETS,
    TrainOptions,
    apply_preset,
    model_config_for,
    train_config_for,
)
from charlm.training.resume import (
    check_frozen_on_resume,
    check_resume_compatible,
    resume_batch_size,
)
from charlm.training.setup import check_run_name
from charlm.training.sizing import auto_sizes, with_auto_sizes


def test_auto_sizes_rule_scales_with_corpus():
    small, big = auto_sizes(60_000), auto_sizes(2_000_000)
    assert small["hidden"] == 256 and small["dropout"] == 0.6 and small["weight_decay"] == 1.0
    assert big["hidden"] > small["hidden"] and big["layers"] == 2
    assert big["dropout"] < small["dropout"] and big["weight_decay"] < small["weight_decay"]
    assert with_auto_sizes(TrainOptions(hidden=64), 60_000).hidden == 64  # explicit wins
    assert with_auto_sizes(TrainOptions(), 60_000).hidden == 256
    assert with_auto_sizes(TrainOptions(optimizer="sgd"), 60_000).weight_decay == 0.0
    assert with_auto_sizes(TrainOptions(embed=0), 60_000).embed == 0  # one-hot stays one-hot
    # the rule's documented points: 0.3 and 0.25 at 16x the text (~1M), capped and floored
    mid = auto_sizes(960_000)
    assert (mid["dropout"], mid["weight_decay"]) == (0.3, 0.25)
    tiny, huge = auto_sizes(6_000), auto_sizes(10**9)
    assert (tiny["dropout"], tiny["weight_decay"]) == (0.6, 1.0)
    assert (huge["dropout"], huge["weight_decay"]) == (0.1, 0.01)


def test_every_option_is_a_field_and_presets_name_only_options():
    names = {f.name for f in fields(TrainOptions)}
    # every TrainConfig and ModelConfig knob can be given as an option
    # (but eval_share: --max-time without --eval-every sets it; cutoffs: --softmax sets them)
    assert {f.name for f in fields(TrainConfig)} - {"eval_share"} <= names
    assert {f.name for f in fields(ModelConfig)} - {"vocab_size", "cutoffs"} <= names
    for preset in PRESETS.values():
        assert set(preset) <= names  # a misspelt key would be a silent no-op
    with pytest.raises(TypeError):
        TrainOptions(eval_epoch=3)  # misspelt: refused, never read as None


def test_preset_fills_only_what_is_not_given():
    opts = apply_preset(TrainOptions(preset="d2l", hidden=128))
    assert opts.hidden == 128 and opts.cell == "rnn" and opts.eval_epochs == 50
    with pytest.raises(UsageError, match="--preset must be one of"):
        apply_preset(TrainOptions(preset="nope"))
    assert apply_preset(TrainOptions()) == TrainOptions()


def test_configs_from_options():
    m = model_config_for(30, TrainOptions(cell="gru", embed=0, hidden=16))
    assert (m.cell, m.embed, m.tie, m.hidden) == ("gru", 0, False, 16)  # one-hot: untied
    with pytest.raises(UsageError, match="bidirectional"):
        model_config_for(30, TrainOptions(bidirectional=True))
    base = TrainConfig(lr=0.1, seed=4)
    t = train_config_for(TrainOptions(lr=0.5), base)
    assert t.lr == 0.5 and t.seed == 4


def test_resume_refuses_architecture_corpus_and_frozen_changes():
    payload = {"model_config": {"cell": "lstm", "hidden": 32}, "corpus": {"fingerprint": "abc"}}
    check_resume_compatible(payload, TrainOptions(hidden=32), "abc", "last.pt")
    with pytest.raises(CheckpointError, match="--hidden 64 differs from the run's hidden 32"):
        check_resume_compatible(payload, TrainOptions(hidden=64), "abc", "last.pt")
    with pytest.raises(CheckpointError, match="corpus differs"):
        check_resume_compatible(payload, TrainOptions(), "xyz", "last.pt")
    base = TrainConfig(batch_size=8)
    check_frozen_on_resume(TrainConfig(batch_size=8, lr=1.0), base, "last.pt")  # lr may change
    with pytest.raises(CheckpointError, match="--seq-len 16 differs"):
        check_frozen_on_resume(TrainConfig(seq_len=16), base, "last.pt")


def test_resume_keeps_the_global_batch_across_a_change_of_processes():
    two = TrainConfig(batch_size=8, processes=2)  # a run of 2 processes x 8 rows: 16 a step
    assert resume_batch_size(TrainOptions(processes=2), two, "last.pt") is None
    assert resume_batch_size(TrainOptions(processes=1), two, "last.pt") == 16
    assert resume_batch_size(TrainOptions(processes=4), two, "last.pt") == 4
    assert resume_batch_size(TrainOptions(processes=4, batch_size=4), two, "last.pt") == 4
    with pytest.raises(CheckpointError, match="divides 16"):
        resume_batch_size(TrainOptions(processes=3), two, "last.pt")
    with pytest.raises(CheckpointError, match="global batch is 16"):
        resume_batch_size(TrainOptions(processes=2, batch_size=16), two, "last.pt")
    with pytest.raises(CheckpointError, match="global batch is 8"):  # one process, as before
        resume_batch_size(TrainOptions(batch_size=16), TrainConfig(batch_size=8), "last.pt")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", ".hidden", "a\\b"])
def test_bad_run_names(name):
    with pytest.raises(UsageError, match="one folder name"):
        check_run_name(name)
    assert check_run_name("jay-2") == "jay-2"
