"""`charlm plot`: train and held-out perplexity of runs against step and time, as a PNG
(path on stdout) or a terminal chart (stderr); the drawing is training/curves.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, guard


@app.command(cls=GroupedCommand, short_help="Plot perplexity against step and time.")
@guard
def plot(
    runs: Annotated[list[str], typer.Argument(help="Run names (or run folders) to overlay.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = Path(
        "charlm-plot.png"
    ),
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Draw held-out perplexity in the terminal instead.")
    ] = False,
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
) -> None:
    """Plot train and held-out perplexity against step and against time (PNG, or --terminal).

    Needs the plot extra: pip install 'charlm-lyrics[plot]'. Prints the PNG's path on stdout.

    \b
    Examples:
      charlm plot jay tang --out curves.png
      charlm plot jay --terminal
    """
    # here, not at the top: `charlm --help` stays fast
    from charlm.training.curves import load_series, terminal_chart, write_png

    dirs = [Path(r) if Path(r).is_dir() else Path(checkpoint_dir) / r for r in runs]
    series = load_series(dirs)
    if terminal:
        print(terminal_chart(series), file=sys.stderr, flush=True)
        return
    print(write_png(series, out), flush=True)
