"""`charlm runs`: a table of the run folders (stderr), their names or JSON lines (stdout);
`charlm runs rm NAME` deletes one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import app, console, guard
from charlm.errors import UsageError

runs_app = typer.Typer(
    help="List the runs under the checkpoint folder; `runs rm NAME` deletes one.",
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs", short_help="List the runs; `runs rm NAME` deletes one.")


@runs_app.callback(invoke_without_command=True)
@guard
def runs(
    ctx: typer.Context,
    sort: Annotated[
        str,
        typer.Option(help="name, corpus, model, steps, best_ppl, trained_s, updated or size_mb."),
    ] = "updated",
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    quiet: o.Quiet = False,
    json_out: o.Json = False,
) -> None:
    """A table of the runs (on stderr); their names on stdout in a pipe, JSON lines with --json.

    \b
    Examples:
      charlm runs
      charlm runs --sort best_ppl --json
      charlm runs rm old-run --yes
    """
    if ctx.invoked_subcommand:
        return
    from charlm.store.listing import list_runs, render  # here: `charlm --help` stays fast

    rows = list_runs(Path(checkpoint_dir), sort)
    render(console(quiet), rows, Path(checkpoint_dir))
    if not json_out and stdout_is_terminal():
        return  # a person reads the table; the names are for pipes and scripts
    for r in rows:
        print(json.dumps(r.as_dict(), ensure_ascii=False) if json_out else r.name, flush=True)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


@runs_app.command("rm")
@guard
def runs_rm(
    name: Annotated[
        str, typer.Argument(help="The run to delete (a folder under --checkpoint-dir).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    quiet: o.Quiet = False,
) -> None:
    """Delete one run folder and everything in it (asks first unless --yes).

    \b
    Example:
      charlm runs rm old-run --yes
    """
    from charlm.store.listing import remove, run_row  # here: `charlm --help` stays fast

    folder = Path(checkpoint_dir) / name
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{folder}: not deleted; pass --yes to delete without asking")
        row = run_row(folder) if folder.is_dir() else None
        size = f" ({row.size_mb:,.1f} MB)" if row else ""
        if not typer.confirm(f"delete run {folder}{size}?", err=True):
            raise typer.Exit(1)
    row = remove(Path(checkpoint_dir), name)
    console(quiet).print(f"deleted {folder} ({row.size_mb:,.1f} MB)")
