"""The `charlm` command line: one module per command behind a thin root (`app`).

Public names: `app` (the Typer application), `main` (the console-script entry point).
Importing the package registers every command on `app`, in the order `--help` lists them.
"""

from charlm.cli import evaluate, generate, info, plot, runs, scan, serve, train  # noqa: F401
from charlm.cli.app import app, main

# `charlm --help` lists commands in the order they were registered: the order of a session.
ORDER = ("train", "generate", "evaluate", "scan", "serve", "info", "plot")
app.registered_commands.sort(key=lambda c: ORDER.index(c.callback.__name__))

__all__ = ["app", "main"]
