"""The learning rate's decay to the end of the run (optim.py) and the options that drive it."""

import json

import pytest

from charlm.config import TrainConfig
from charlm.training import optim
from charlm.training.members import room_for_member
from charlm.training.optim import DECAY_FLOOR, RunLength, decay_factor, lr_at

from ..conftest import invoke


def test_the_rate_is_constant_then_falls_linearly_to_the_floor():
    assert [decay_factor(0.5, d) for d in (0.0, 0.3, 0.5)] == [1.0, 1.0, 1.0]
    assert decay_factor(0.5, 0.75) == pytest.approx(0.5)
    assert decay_factor(0.5, 0.9) == pytest.approx(0.2)
    assert decay_factor(0.5, 1.0) == DECAY_FLOOR
    assert decay_factor(1.0, 0.25) == pytest.approx(0.75)  # the whole run: linear from the start
    assert decay_factor(0.0, 0.99) == 1.0  # off
    cfg = TrainConfig(lr=0.01, warmup=0, decay=0.5)
    assert lr_at(cfg, 10, 1.0, 0.75) == pytest.approx(0.005)
    assert lr_at(cfg, 10, 0.5, 0.75) == pytest.approx(0.0025)  # times the plateau scale


def test_how_far_the_run_is_counts_steps_or_time_whichever_is_further(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(optim.time, "monotonic", lambda: clock[0])
    by_steps = RunLength(step_limit=200, started=100.0, deadline=None)
    assert by_steps.done(50, 0.0) == 0.25 and by_steps.done(400, 0.0) == 1.0
    timed = RunLength(step_limit=10_000, started=100.0, deadline=200.0)
    clock[0] = 145.0
    assert timed.done(10, closing_s=10.0) == pytest.approx(0.5)  # 45 s of the 90 left to train
    assert timed.done(9_000, closing_s=10.0) == pytest.approx(0.9)  # the steps are further
    clock[0] = 500.0
    assert timed.done(10, 0.0) == 1.0


def test_no_new_network_starts_once_the_decay_has_begun():
    class Prog:
        best_step, member_start_step, member, elapsed_s, member_start_s = 40, 0, 0, 10.0, 0.0
        step = 40

    class Members:
        best = (1,)

    class Dist:
        def any(self, flag):
            return flag

    cfg = TrainConfig(max_time=600, members=4, decay=0.5)
    far = 10**12  # a deadline with room for anything
    assert room_for_member(cfg, Prog(), Members(), Dist(), far, done=0.3)
    assert not room_for_member(cfg, Prog(), Members(), Dist(), far, done=0.6)
    off = TrainConfig(max_time=600, members=4, decay=0.0)
    assert room_for_member(off, Prog(), Members(), Dist(), far, done=0.9)


def test_decay_is_recorded_honoured_on_resume_and_checked(tmp_path, runner, corpus_file):
    from ..conftest import TINY_TRAIN

    ck = tmp_path / "ck"
    args = ["train", "--corpus", corpus_file, "--checkpoint-dir", ck, *TINY_TRAIN]
    r = invoke(runner, [*args, "--run", "a", "--max-steps", "40", "--decay", "1"])
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(x) for x in (ck / "a" / "metrics.jsonl").read_text().splitlines()]
    # warm-up off, lr 3e-3 falling linearly over the 40 steps: at step 20, half
    assert recs[0]["step"] == 20 and recs[0]["lr"] == pytest.approx(3e-3 * 20 / 40, rel=0.06)
    r = invoke(runner, ["train", "--run", "a", "--resume", "--checkpoint-dir", ck,
                        "--max-steps", "60"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    import torch

    payload = torch.load(ck / "a" / "last.pt", weights_only=True)
    assert payload["train_config"]["decay"] == 1.0  # kept across the resume
    r = invoke(runner, [*args, "--run", "b", "--max-steps", "4", "--decay", "1.5"])
    assert r.exit_code == 2 and "--decay must be in [0, 1]" in r.stderr
    assert not (ck / "b").exists()


def test_a_time_budget_decays_by_default_and_explicit_options_win(tmp_path, corpus_file):
    import torch

    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare
    from charlm.training.sizing import BUDGET_EPOCHS, DECAY

    def config(**kw):
        opts = TrainOptions(corpus=str(corpus_file), hidden=16, batch_size=4, seq_len=8, **kw)
        return prepare(opts, tmp_path, torch.device("cpu"), echo=lambda s: None).train_config

    # README: with --max-time the rate decays over the last half of the budget
    assert config(max_time=30.0).decay == DECAY == 0.5 and config().decay == 0.0
    assert config(max_time=30.0, decay=0.1).decay == 0.1
    # the budget ends the run, not the 100-epoch cap (which would also start the decay early)
    assert config(max_time=30.0).epochs == BUDGET_EPOCHS and config().epochs == 100
    assert config(max_time=30.0, epochs=7).epochs == 7


def test_a_plateau_in_the_decay_does_not_end_a_budgeted_run():
    from types import SimpleNamespace

    from charlm.training.loop import Trainer

    def decaying(done, **kw):
        cfg = TrainConfig(**{"max_time": 600, "decay": 0.5, **kw})
        return Trainer._decaying(SimpleNamespace(train_config=cfg, done=done))

    assert decaying(0.6) and not decaying(0.4)
    assert not decaying(0.9, decay=0.0)  # no decay: the plateau rule stops as before
    assert not decaying(0.9, max_time=0)  # a run bounded by steps keeps early stopping


def test_evaluations_keep_to_their_share_of_a_budgeted_run():
    from charlm.training.optim import MAX_EVAL_STRETCH, eval_interval
    from charlm.training.options import EVAL_SHARE

    fixed = TrainConfig(eval_every=50)
    assert eval_interval(fixed, eval_s=10.0, step_s=0.01) == 50  # no share: every 50 steps
    cfg = TrainConfig(eval_every=50, eval_share=EVAL_SHARE)
    # an evaluation of 1.6 s at 0.1 s a step: 160 steps make it a tenth of the training time
    assert eval_interval(cfg, eval_s=1.6, step_s=0.1) == 160
    assert eval_interval(cfg, eval_s=0.1, step_s=0.1) == 50  # cheap: never more often
    assert eval_interval(cfg, eval_s=60.0, step_s=0.1) == MAX_EVAL_STRETCH * 50


def test_a_time_budget_stretches_the_cadence_unless_one_is_given(tmp_path, corpus_file):
    import torch

    from charlm.training.options import EVAL_SHARE, TrainOptions, train_config_for
    from charlm.training.setup import prepare

    def config(**kw):
        opts = TrainOptions(corpus=str(corpus_file), hidden=16, batch_size=4, seq_len=8, **kw)
        return prepare(opts, tmp_path, torch.device("cpu"), echo=lambda s: None).train_config

    assert config(max_time=30.0).eval_share == EVAL_SHARE and config().eval_share == 0.0
    assert config(max_time=30.0, eval_every=10).eval_share == 0.0
    assert config(max_time=30.0, eval_epochs=2).eval_share == 0.0
    stored = TrainConfig(max_time=30.0, eval_share=EVAL_SHARE)  # a resume keeps it...
    assert train_config_for(TrainOptions(max_time=60.0), stored).eval_share == EVAL_SHARE
    # ... unless a cadence is given then
    assert train_config_for(TrainOptions(eval_every=20), stored).eval_share == 0.0


def test_the_loop_evaluates_where_the_cadence_says(tmp_path, runner, corpus_file, monkeypatch):
    from charlm.training import loop

    from ..conftest import TINY_TRAIN

    asked = []

    def interval(cfg, eval_s, step_s):
        asked.append((cfg.eval_share, eval_s > 0, step_s > 0))
        return 30

    monkeypatch.setattr(loop, "eval_interval", interval)
    ck = tmp_path / "ck"
    r = invoke(runner, ["train", "--corpus", corpus_file, "--checkpoint-dir", ck, *TINY_TRAIN,
                        "--run", "a", "--max-steps", "100", "--eval-every", "20"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(x) for x in (ck / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == [20, 50, 80, 100]  # the first at --eval-every
    assert asked and all(a == (0.0, True, True) for a in asked)
