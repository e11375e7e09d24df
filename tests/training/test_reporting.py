"""training/reporting.py and curves.py: what training prints shows like beside like, the bar
counts a budget in seconds, and a long run without one says how long it will take."""

import time

from charlm.training.curves import _curves
from charlm.training.reporting import (
    ESTIMATE_AFTER_STEPS,
    Reporter,
    Window,
    duration_note,
    eval_line,
)

REC = {"step": 50, "epoch": 1.5, "train_ppl": 80.0, "val_ppl": 30.0, "val_ppl_net": 90.0,
       "mix_weight": 0.4, "best": True, "lr": 1e-3, "chars_per_s": 1000.0,
       "epoch_train_ppl": None}  # fmt: skip


def test_the_log_puts_the_networks_train_and_held_out_side_by_side():
    line = eval_line(REC)
    assert "net ppl: train 80.00 held-out 90.00" in line
    assert "mixture (w 0.40): held-out 30.00 *" in line
    alone = eval_line({**REC, "val_ppl_net": None, "mix_weight": None})
    assert "train ppl 80.00  held-out ppl 30.00 *" in alone and "mixture" not in alone


def test_plot_labels_say_which_figure_is_the_network_and_which_the_mixture():
    rows = [{"step": 10, "train_ppl": 80.0, "val_ppl": 30.0, "val_ppl_net": 90.0}]
    assert set(_curves(rows, "step")) == {
        "held-out (mixture)", "held-out (network)", "train (network)"
    }  # fmt: skip
    assert min(_curves(rows, "step")) == "held-out (mixture)"  # what ships is drawn first
    plain = [{"step": 10, "train_ppl": 80.0, "val_ppl": 60.0}]
    assert set(_curves(plain, "step")) == {"held-out", "train (network)"}


def test_with_a_budget_the_bar_counts_its_seconds():
    r = Reporter(lambda s: None, True, [], 0, "cpu")  # shown (on pytest's captured stderr)
    deadline = time.monotonic() + 30
    with r.progress(total=27000, initial=0, deadline=deadline, budget_s=40) as bar:
        assert bar.total == 40 and 9 <= bar.n <= 11  # 10 s of the 40 were spent before
        assert bar.unit == "s"
    with r.progress(total=500, initial=20) as bar:  # no budget: steps of the step limit
        assert bar.total == 500 and bar.n == 20 and bar.unit == "step"


def test_a_run_without_a_budget_that_would_take_hours_says_so_once():
    w = Window(steps=ESTIMATE_AFTER_STEPS, seconds=20.0)  # 1 s a step
    note = duration_note(ESTIMATE_AFTER_STEPS, 10_000, w)
    assert note and "2.8 h" in note and "--max-time" in note and "--epochs" in note
    assert duration_note(ESTIMATE_AFTER_STEPS + 1, 10_000, w) is None  # once
    assert duration_note(ESTIMATE_AFTER_STEPS, 1_000, w) is None  # 16 min: nothing to say
