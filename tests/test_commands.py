"""commands.py: what each command does once its options are parsed (no CLI parsing here)."""

import io
import json

import pytest
from rich.console import Console

from charlm.cli.commands import run_evaluate, run_generate, run_train
from charlm.config import SampleConfig
from charlm.errors import Interrupted
from charlm.store.run_folder import RunFolder
from charlm.training.options import TrainOptions

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


def test_run_generate_streams_text_and_json(run, capsys):
    ck, _ = run
    c, _ = console()
    common = dict(spec=None, skip_unknown=False, device_name="cpu", ckdir=ck, console=c)
    run_generate(cfg=SampleConfig(length=12, seed=1), prefix=None, json_out=False,
                 seed_given=True, **common)  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("分开") and out.endswith("\n") and len(out) == 15
    run_generate(cfg=SampleConfig(length=5, seed=1, num_samples=2), prefix="不", json_out=True,
                 seed_given=False, **common)  # fmt: skip
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["sample"] for r in recs] == [0, 1] and all(r["prefix"] == "不" for r in recs)


def test_run_evaluate_matches_training_and_reports_the_parts(run):
    ck, s = run
    c, buf = console()
    r = run_evaluate(spec="r", corpus_src=None, which="val", baseline=True, encoding=None,
                     device_name="cpu", ckdir=ck, console=c)  # fmt: skip
    assert r["perplexity"] == pytest.approx(s["best_val_ppl"], rel=1e-9)
    assert {"network", "baseline_kn", "mix_weight"} <= r.keys()
    assert "Kneser-Ney 8-gram baseline" in buf.getvalue()
