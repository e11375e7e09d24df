"""`charlm train --softmax`: a two-level model trains, is saved with its cutoffs, generates
and evaluates; --resume and --init-from keep the run's (the base's) output layer."""

import json

import pytest
import torch

from tests.conftest import TINY_TRAIN, invoke, train_tiny


@pytest.fixture(scope="module")
def two_level(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    return train_tiny(ck, "ada", *TINY_TRAIN, "--max-steps", "30", "--softmax", "adaptive")


def test_a_two_level_run_saves_its_cutoffs_and_generates_and_evaluates(two_level, runner):
    cfg = torch.load(two_level / "ada" / "best.pt", weights_only=True)["model_config"]
    assert cfg["cutoffs"] and list(cfg["cutoffs"]) == sorted(cfg["cutoffs"])
    gen = invoke(runner, ["generate", "--checkpoint", "ada", "--checkpoint-dir", two_level,
                          "--prefix", "我", "--length", "30", "--seed", "1"])  # fmt: skip
    assert gen.exit_code == 0, gen.output
    assert gen.stdout.startswith("我") and len(gen.stdout.strip()) > 5
    ev = invoke(runner, ["evaluate", "--checkpoint", "ada", "--checkpoint-dir", two_level,
                         "--json"])  # fmt: skip
    assert ev.exit_code == 0, ev.output
    ppl = json.loads(ev.stdout.splitlines()[-1])["perplexity"]
    assert 1 < ppl < 60  # better than uniform over the tiny vocabulary after 30 steps


def test_resume_refuses_another_softmax(two_level, runner):
    r = invoke(runner, ["train", "--run", "ada", "--resume", "--checkpoint-dir", two_level,
                        "--softmax", "full", "--max-steps", "40"])  # fmt: skip
    assert r.exit_code == 4 and "--softmax full differs from the run's adaptive" in r.stderr


def test_init_from_keeps_the_base_s_output_layer(two_level, runner):
    r = invoke(runner, ["train", "--corpus", two_level / "lyrics.txt", "--run", "ft",
                        "--checkpoint-dir", two_level, "--init-from", "ada", "--softmax", "full",
                        "--max-steps", "5"])  # fmt: skip
    assert r.exit_code == 2 and "differs from the base's adaptive softmax" in r.stderr
    assert not (two_level / "ft").exists()


@pytest.mark.parametrize("extra", [[], ["--resume", "--run", "ada"]])
def test_an_unknown_softmax_is_refused_before_anything_is_read(two_level, runner, extra):
    r = invoke(runner, ["train", "--corpus", two_level / "lyrics.txt", "--checkpoint-dir",
                        two_level, "--softmax", "hierarchical", *extra])  # fmt: skip
    assert r.exit_code == 2 and "--softmax must be one of auto, full, adaptive" in r.stderr


def test_info_names_the_two_level_layer_and_its_cluster_scores(two_level, runner):
    r = invoke(runner, ["info", "--checkpoint", "ada", "--checkpoint-dir", two_level])
    assert r.exit_code == 0, r.output
    cfg = torch.load(two_level / "ada" / "best.pt", weights_only=True)["model_config"]
    cuts = ", ".join(map(str, cfg["cutoffs"]))
    assert f"two-level softmax (clusters from ids {cuts})" in r.stdout.splitlines()[0]
    assert "cluster.weight" in r.stdout


def test_a_two_level_base_fine_tunes_on_its_own_ids(two_level, runner, tmp_path):
    """Its clusters are ranges of its ids: the vocabulary stays the base's, new ones after."""
    text = (two_level / "lyrics.txt").read_text(encoding="utf-8")
    (tmp_path / "new.txt").write_text(text.replace("雨", "霜"), encoding="utf-8")
    r = invoke(runner, ["train", "--corpus", tmp_path / "new.txt", "--run", "ft2",
                        "--checkpoint-dir", two_level, "--init-from", "ada",
                        "--max-steps", "5"])  # fmt: skip
    assert r.exit_code == 0, r.output
    base = torch.load(two_level / "ada" / "best.pt", weights_only=True)
    tuned = torch.load(two_level / "ft2" / "best.pt", weights_only=True)
    n = len(base["vocab"])
    assert tuned["vocab"][:n] == base["vocab"] and "霜" in tuned["vocab"][n:]
    assert tuned["model_config"]["cutoffs"] == base["model_config"]["cutoffs"]
