"""training/run.py: what `charlm train` does once its options are parsed (no CLI parsing)."""

import io
import json

import pytest
from rich.console import Console

from charlm.errors import Interrupted
from charlm.store.run_folder import RunFolder
from charlm.training.options import TrainOptions
from charlm.training.run import run_training as run_train

TINY = dict(cell="gru", embed=16, hidden=32, layers=1, dropout=0.0, batch_size=8, seq_len=16,
            eval_every=10, seed=3, warmup=0, early_stop=0)  # fmt: skip


def console():
    buf = io.StringIO()
    return Console(file=buf, width=200, no_color=True), buf


@pytest.fixture
def run(tmp_path, corpus_file):
    c, _ = console()
    opts = TrainOptions(corpus=str(corpus_file), run="r", max_steps=20, **TINY)
    summary = run_train(opts, "cpu", tmp_path, c, quiet=True)
    return tmp_path, summary


def test_a_finished_run_says_what_to_do_next(tmp_path, corpus_file):
    c, buf = console()
    opts = TrainOptions(corpus=str(corpus_file), run="nx", max_steps=5, **TINY)
    run_train(opts, "cpu", tmp_path, c, quiet=True)
    text = buf.getvalue()
    assert f"next: charlm generate --checkpoint nx --checkpoint-dir {tmp_path}" in text
    assert "--resume" in text


def test_run_train_returns_the_summary_and_writes_the_folder(run):
    ck, s = run
    assert s["stopped"] == "max-steps" and s["steps"] == 20 and s["seed"] == 3
    folder = RunFolder(ck / "r")
    assert folder.has_checkpoints() and [r["step"] for r in folder.read_metrics()] == [10, 20]


def test_run_train_interrupted_raises_after_saving(tmp_path, corpus_file, monkeypatch):
    import signal

    from charlm.training.loop import Trainer

    real = Trainer.run

    def interrupted(self):
        return {**real(self), "stopped": "interrupted", "signal": signal.SIGTERM}

    monkeypatch.setattr(Trainer, "run", interrupted)
    c, buf = console()
    opts = TrainOptions(corpus=str(corpus_file), run="i", max_steps=3, **TINY)
    with pytest.raises(Interrupted) as e:
        run_train(opts, "cpu", tmp_path, c, quiet=True)
    assert e.value.exit_code == 143 and "--resume" in buf.getvalue()
    assert (tmp_path / "i" / "last.pt").exists()


def test_a_run_stopped_before_its_first_evaluation_says_so(tmp_path, corpus_file, monkeypatch):
    """Bug: Ctrl-C before the first evaluation listed a best.pt that did not exist (best
    held-out ppl inf, step 0), `generate --checkpoint RUN` then said "neither a checkpoint
    file nor a run", and the deliberate Ctrl-C read as `charlm: error: interrupted by SIGINT`."""
    import os
    import signal

    from typer.testing import CliRunner

    import charlm.training.loop as loop
    from charlm.cli import app

    real, calls = loop.train_step, []

    def ctrl_c(*a, **k):  # a Ctrl-C arrives during the second step, long before step 10
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(loop, "train_step", ctrl_c)
    c, buf = console()
    opts = TrainOptions(corpus=str(corpus_file), run="early", max_steps=30, **TINY)
    with pytest.raises(Interrupted) as e:
        run_train(opts, "cpu", tmp_path, c, quiet=True)
    table = buf.getvalue()
    assert "n/a (no evaluation yet)" in table and "none yet" in table and "inf" not in table
    assert (tmp_path / "early" / "last.pt").is_file() and not (
        tmp_path / "early" / "best.pt"
    ).exists()
    assert str(e.value) == "interrupted by SIGINT"
    runner = CliRunner()
    r = runner.invoke(app, ["generate", "--checkpoint", "early", "--checkpoint-dir", str(tmp_path)])
    assert r.exit_code == 4 and "has no best.pt yet" in r.stderr and "--resume" in r.stderr
    r = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "early" / "last.pt"),
                            "--length", "5", "--seed", "1"])  # fmt: skip
    assert r.exit_code == 0 and r.stdout


def test_a_network_that_adds_nothing_is_said(tmp_path, corpus_file, monkeypatch):
    """On a small corpus the mixture weight stayed 0.00 and nothing said what that means."""
    import charlm.training.run as run_module

    monkeypatch.setattr(run_module, "LOW_NETWORK_SHARE", 1.01)  # any fitted share is "low"
    c, buf = console()
    opts = TrainOptions(corpus=str(corpus_file), run="low", max_steps=5, **TINY)
    run_train(opts, "cpu", tmp_path, c, quiet=True)
    assert "the network's share in the mixture is" in buf.getvalue()
    monkeypatch.setattr(run_module, "LOW_NETWORK_SHARE", 0.0)
    c, buf = console()
    run_train(TrainOptions(corpus=str(corpus_file), run="ok", max_steps=5, **TINY), "cpu",
              tmp_path, c, quiet=True)  # fmt: skip
    assert "share in the mixture" not in buf.getvalue()


def test_a_network_alone_on_a_few_thousand_characters_says_it_memorises(tmp_path, corpus_file):
    c, buf = console()
    opts = TrainOptions(corpus=str(corpus_file), run="few", max_steps=5, kn_order=0, **TINY)
    run_train(opts, "cpu", tmp_path, c, quiet=True)
    assert "are few for a network of its own" in buf.getvalue()
    assert "--init-from zh" in buf.getvalue()


def test_dry_run_prints_the_plan_and_makes_nothing(tmp_path, runner):
    from ..conftest import invoke, tiny_text

    corpus = tmp_path / "lyrics.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    ck = tmp_path / "ck"
    args = ["train", "--corpus", corpus, "--run", "plan", "--checkpoint-dir", ck,
            "--max-time", "60", "--init-from", "none", "--dry-run", "--json"]  # fmt: skip
    r = invoke(runner, args)
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["run"].endswith("plan") and plan["train"]["max_time"] == 60
    assert plan["model"]["hidden"] >= 1 and plan["params"] > 0 and plan["base"] is None
    assert plan["train_chars"] + plan["tune_chars"] + plan["heldout_chars"] == len(tiny_text())
    assert "plan (--dry-run" in r.stderr and not (ck / "plan").exists()
