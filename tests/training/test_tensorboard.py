"""`charlm train --tensorboard`: events beside metrics.jsonl, with the same numbers."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from ..conftest import TINY_TRAIN, invoke, tiny_text, train_tiny


def test_events_hold_each_evaluation(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ck = train_tiny(tmp_path, "tb", *TINY_TRAIN, "--max-steps", "40", "--tensorboard")
    records = [json.loads(x) for x in (ck / "tb" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(ck / "tb" / "tensorboard"))
    events.Reload()
    held_out = events.Scalars("perplexity/held-out")
    assert [e.step for e in held_out] == [r["step"] for r in records] == [20, 40]
    assert [e.value for e in held_out] == pytest.approx([r["val_ppl"] for r in records], 1e-6)
    assert "perplexity/train" in events.Tags()["scalars"]


def test_without_the_package_it_says_how_to_install_and_makes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    corpus = tmp_path / "lyrics.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    r = invoke(CliRunner(), ["train", "--corpus", corpus, "--checkpoint-dir", tmp_path / "ck",
                             "--tensorboard", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 2
    assert "pip install 'charlm-lyrics[tensorboard]'" in r.stderr
    assert not (tmp_path / "ck").exists()


def test_resume_hides_the_future_that_did_not_happen_and_keeps_the_resumed_step(tmp_path):
    """Bug: purge_step was the resumed step itself, and TensorBoard hides steps >= it, so
    the last evaluation before the resume vanished from the curves."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from charlm.training.tensorboard import EventLog

    log = EventLog(tmp_path)
    for step, ppl in ((10, 5.0), (20, 4.0), (30, 3.0)):  # 30: written, then the run died
        log.write({"step": step, "val_ppl": ppl})
    log.close()
    log = EventLog(tmp_path, resume_step=20)  # last.pt was at step 20
    for step, ppl in ((30, 2.5), (40, 2.0)):
        log.write({"step": step, "val_ppl": ppl})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("perplexity/held-out")]
    assert points == [(10, 5.0), (20, 4.0), (30, 2.5), (40, 2.0)]
