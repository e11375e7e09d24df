"""The Python API (charlm.load and LanguageModel), which the CLI's generate and evaluate use."""

import json

import pytest

import charlm
from charlm.config import SampleConfig
from charlm.errors import CheckpointError, DataError, UsageError

from .conftest import invoke, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tiny = ["--cell", "gru", "--embed", "16", "--hidden", "32", "--batch-size", "8", "--seq-len",
            "16", "--max-steps", "20", "--eval-every", "10", "--seed", "3"]  # fmt: skip
    return train_tiny(tmp_path_factory.mktemp("api"), "r", *tiny)


def test_load_generates_what_the_cli_writes(trained, runner):
    ck = trained
    lm = charlm.load("r", checkpoint_dir=ck, device="cpu")
    text = lm.generate_text("分开", length=30, seed=4, temperature=0.7)
    args = ["--prefix", "分开", "--length", "30", "--seed", "4", "--temperature", "0.7"]
    r = invoke(runner, ["generate", "--checkpoint", "r", "--checkpoint-dir", ck, *args])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == text + ("" if text.endswith("\n") else "\n")
    assert text.startswith("分开") and len(text) == 32
    pieces = list(lm.generate("分开", length=30, seed=4, temperature=0.7))
    assert pieces[0] == "分开" and "".join(pieces) == text  # an iterator of the text as it comes


def test_generate_lines_acrostic_and_default_prefix(trained):
    lm = charlm.load(trained / "r", device="cpu")  # a run folder works too
    song = lm.generate_text(acrostic="分不", seed=2)
    assert [line[0] for line in song.splitlines()] == ["分", "不"]
    assert lm.generate_text(length=5, seed=1).startswith("分开")  # the default prefix
    with pytest.raises(DataError, match="never saw"):
        lm.generate_text("分开\u2603", length=3)
    assert lm.generate_text("分开\u2603", length=3, skip_unknown=True, seed=1).startswith("分开")
    with pytest.raises(UsageError):
        list(lm.generate("分", num_samples=2))


def test_stream_gives_one_piece_per_sample(trained):
    lm = charlm.load("r", checkpoint_dir=trained, device="cpu")
    steps = list(lm.stream("不", SampleConfig(length=5, seed=1, num_samples=3)))
    assert steps[0] == ["不"] * 3 and all(len(s) == 3 for s in steps) and len(steps) == 6


def test_evaluate_matches_the_cli_and_scores_plain_text(trained, runner):
    lm = charlm.load("r", checkpoint_dir=trained, device="cpu")
    r = invoke(runner, ["evaluate", "--checkpoint", "r", "--checkpoint-dir", trained, "--json"])
    assert r.exit_code == 0, r.stderr
    cli = json.loads(r.stdout)
    api = lm.evaluate()
    assert api["perplexity"] == pytest.approx(cli["perplexity"], rel=1e-12)
    assert {"network", "mix_weight", "split", "corpus"} <= api.keys()
    seen = lm.evaluate("分开的时候我还在想你\n" * 3)
    unseen = lm.evaluate("的我分开想你还在时候\n" * 3)
    assert seen["chars"] == 32 and seen["perplexity"] < unseen["perplexity"]
    with pytest.raises(UsageError):
        lm.evaluate("分")


def test_load_errors_are_charlm_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        charlm.load(checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="neither a checkpoint file nor a run"):
        charlm.load("nope", checkpoint_dir=tmp_path)


def test_import_charlm_stays_light():
    import subprocess
    import sys

    code = "import sys, charlm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # charlm.load pulls torch in on first use


def test_the_cli_s_help_stays_light():
    """`charlm --help` and `charlm train --help` read the option modules, not torch."""
    import subprocess
    import sys

    code = ("import sys; from charlm.cli import app; from charlm.training import options; "
            "print('torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_readme_example_runs(trained, tmp_path, monkeypatch, capsys):
    """README's Python block, as written, against a run named jay under ./checkpoints."""
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    shutil.copytree(trained / "r", tmp_path / "checkpoints" / "jay")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    lm = charlm.load("jay", device="cpu")
    song = lm.generate_text("分开", lines=4, seed=1)
    form = lm.generate_text(form="七言绝句", seed=3)  # printed piece by piece: the same text
    assert out == song + "\n" + form
    assert [len(line) for line in form.splitlines()] == [7, 7, 7, 7]
