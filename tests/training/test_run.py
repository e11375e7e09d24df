"""training/run.py: what `charlm train` does once its options are parsed (no CLI parsing)."""

import io

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
