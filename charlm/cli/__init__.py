"""The `charlm` command line: one module per command behind a thin root (`app`).

Public names: `app` (the Typer application), `main` (the console-script entry point).
"""

from charlm.cli.app import app, main

__all__ = ["app", "main"]
