"""The curves `charlm plot` draws: train and held-out perplexity of one or more runs, against
step and against wall time, from their metrics.jsonl. matplotlib (PNG) and plotext
(`--terminal`) are optional: `pip install 'charlm-lyrics[plot]'`; without them the command says
so (exit 2).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from charlm.errors import UsageError
from charlm.store.run_folder import PPL_LABELS, RunFolder

INSTALL = "pip install 'charlm-lyrics[plot]'"


def load_series(run_dirs: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Run name -> its metrics records; refuses a run without any."""
    series = {}
    for d in run_dirs:
        rows = RunFolder(d).read_metrics()
        if not rows:
            raise UsageError(f"{d}: no metrics.jsonl records to plot (see charlm runs)")
        series[d.name] = rows
    return series


# like beside like: the training perplexity is the network's, so a run with a count model also
# draws the network's held-out curve, and its held-out curve (what ships) says "mixture"
LINE_STYLES = {"held-out": "-", "held-out (mixture)": "-", "held-out (network)": ":"}


def _curves(rows: list[dict[str, Any]], x: str) -> dict[str, tuple[list[float], list[float]]]:
    """Label -> (xs, ys): "held-out" (or "held-out (mixture)" and "held-out (network)") and
    "train (network)"; the first label in sorted order is what ships."""
    mixed = any(r.get("val_ppl_net") is not None for r in rows)
    keys = {
        "val_ppl": f"{PPL_LABELS['val_ppl']} (mixture)" if mixed else PPL_LABELS["val_ppl"],
        "val_ppl_net": f"{PPL_LABELS['val_ppl']} (network)",
        "train_ppl": f"{PPL_LABELS['train_ppl']} (network)",
    }
    out = {}
    for key, label in keys.items():
        pts = [(r[x], r[key]) for r in rows if r.get(key) is not None and r.get(x) is not None]
        if pts:
            out[label] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def write_png(series: dict[str, list[dict[str, Any]]], out: Path) -> Path:
    """Two panels (against step, against minutes trained), every run overlaid, log scale;
    written to a temporary file and renamed."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"charlm plot needs matplotlib: {INSTALL}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for i, (name, rows) in enumerate(series.items()):
        color = f"C{i % 10}"
        for ax, x in zip(axes, ("step", "elapsed_s"), strict=True):
            for label, (xs, ys) in _curves(rows, x).items():
                xs = [v / 60 for v in xs] if x == "elapsed_s" else xs
                ax.plot(xs, ys, color=color, linestyle=LINE_STYLES.get(label, "--"),
                        label=f"{name} {label}")  # fmt: skip
    for ax, xlabel in zip(axes, ("step", "minutes trained"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("perplexity")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("held-out (solid; the network alone dotted) and train (dashed) perplexity")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out


def terminal_chart(series: dict[str, list[dict[str, Any]]]) -> str:
    """Held-out (else train) perplexity against step, drawn with plotext, as text."""
    try:
        import plotext as plt
    except ImportError:
        raise UsageError(f"charlm plot --terminal needs plotext: {INSTALL}") from None
    plt.clear_figure()
    plain = bool(os.environ.get("NO_COLOR")) or not sys.stderr.isatty()
    if plain:
        plt.theme("clear")
    for name, rows in series.items():
        curves = _curves(rows, "step")
        label, (xs, ys) = min(curves.items())  # what ships: "held-out" sorts before "train"
        plt.plot(xs, ys, label=f"{name} {label}")
    plt.xlabel("step")
    plt.ylabel("perplexity")
    plt.plotsize(100, 25)
    chart = plt.build()
    # no escape codes in a pipe, a log file or under NO_COLOR
    return re.sub(r"\x1b\[[0-9;]*m", "", chart) if plain else chart
