"""charlm plot: a real PNG of every run's curves; a clear exit 2 without the plot extra."""

import sys

import numpy as np
import pytest

from ..conftest import train_tiny


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    for name, seed in (("a", "1"), ("b", "2")):
        train_tiny(root, name, "--max-steps", "12", "--eval-every", "3", "--batch-size", "4",
                   "--seq-len", "8", "--hidden", "16", "--seed", seed)  # fmt: skip
    return root


def app():
    from charlm.cli import app

    return app


def test_png_has_the_size_and_the_curves(two_runs, runner, tmp_path):
    import matplotlib.image

    out = tmp_path / "curves.png"
    r = runner.invoke(app(), ["plot", "a", "b", "--checkpoint-dir", str(two_runs), "--out",
                              str(out)])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(out)
    img = matplotlib.image.imread(out)  # decodes
    assert img.shape[:2] == (450, 1200)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # lines, text, grid: not a blank canvas
    blue = (np.abs(img[..., 0] - 0.12) < 0.05) & (np.abs(img[..., 2] - 0.71) < 0.05)  # C0
    orange = (img[..., 0] > 0.95) & (np.abs(img[..., 1] - 0.5) < 0.05) & (img[..., 2] < 0.1)
    assert blue.sum() > 200 and orange.sum() > 200  # both runs drawn
    assert not list(tmp_path.glob(".*tmp*"))


def test_terminal_chart_names_the_runs(two_runs, runner, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for the chart's own 100 x 25
    monkeypatch.setenv("LINES", "60")
    r = runner.invoke(app(), ["plot", "a", "b", "--checkpoint-dir", str(two_runs), "--terminal"])
    assert r.exit_code == 0 and r.stdout == ""
    assert "a held-out" in r.stderr and "b held-out" in r.stderr and "\x1b[" not in r.stderr
    chart = [line for line in r.stderr.splitlines() if line]
    assert max(map(len, chart)) == 100 and len(chart) == 25


def test_missing_runs_and_missing_extra_exit_2(two_runs, runner, monkeypatch, tmp_path):
    r = runner.invoke(app(), ["plot", "nope", "--checkpoint-dir", str(two_runs)])
    assert r.exit_code == 2 and "nope" in r.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    out = tmp_path / "x.png"
    r = runner.invoke(app(), ["plot", "a", "--checkpoint-dir", str(two_runs), "--out", str(out)])
    assert r.exit_code == 2 and "charlm-lyrics[plot]" in r.stderr and not out.exists()
    monkeypatch.setitem(sys.modules, "plotext", None)
    r = runner.invoke(app(), ["plot", "a", "--checkpoint-dir", str(two_runs), "--terminal"])
    assert r.exit_code == 2 and "plotext" in r.stderr


def test_each_curve_is_drawn_against_steps_and_minutes_in_its_style(
    two_runs, runner, monkeypatch, tmp_path
):
    """What the PNG holds, read from the plot calls: the left panel against steps, the right
    against minutes trained (elapsed_s / 60), held-out solid, the network alone dotted, train
    dashed (the title's legend)."""
    import json

    import matplotlib.axes

    drawn = []
    real = matplotlib.axes.Axes.plot

    def plot(ax, xs, ys, **kw):
        drawn.append((ax.get_xlabel() or "pending", list(xs), kw["linestyle"], kw["label"]))
        return real(ax, xs, ys, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    r = runner.invoke(app(), ["plot", "a", "--checkpoint-dir", str(two_runs), "--out",
                              str(tmp_path / "a.png")])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(x) for x in (two_runs / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [float(r["step"]) for r in rows]
    minutes = [r["elapsed_s"] / 60 for r in rows]
    styles = {label.removeprefix("a "): style for _, _, style, label in drawn}
    assert styles == {"held-out (mixture)": "-", "held-out (network)": ":",
                      "train (network)": "--"}  # fmt: skip
    held_out = [xs for _, xs, _, label in drawn if label == "a held-out (mixture)"]
    assert held_out == [steps, pytest.approx(minutes)]  # the step panel, then the minutes one


def test_a_record_without_a_figure_leaves_a_gap_not_a_point():
    from charlm.training.curves import _curves

    rows = [{"step": 1, "elapsed_s": 6.0, "val_ppl": None, "train_ppl": 5.0},
            {"step": 2, "elapsed_s": 12.0, "val_ppl": 4.0, "train_ppl": 3.0},
            {"step": 3, "val_ppl": 3.5, "train_ppl": 2.0}]  # fmt: skip
    assert _curves(rows, "step") == {"held-out": ([2, 3], [4.0, 3.5]),
                                     "train (network)": ([1, 2, 3], [5.0, 3.0, 2.0])}  # fmt: skip
    assert _curves(rows, "elapsed_s")["held-out"] == ([12.0], [4.0])
