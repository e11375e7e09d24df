"""The thin root of the command line: the Typer app, the error guard, the stderr console,
and the console-script entry point. Each command lives in a module of its own (cli/*.py) and
registers itself on `app`; `charlm.cli` imports them all.

torch-using modules are imported inside the commands so that `charlm --help` stays fast.
Every CharlmError becomes one line on stderr and its exit code (see `guard`).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Annotated, Any

import typer
import typer.core

from charlm.errors import (
    EXIT_DATA,
    EXIT_RESOURCES,
    EXIT_UNEXPECTED,
    CharlmError,
    Interrupted,
)
from charlm.version import __version__

app = typer.Typer(
    name="charlm",
    help="Character-level lyrics language models: train, generate, evaluate.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help and errors: faster to start (no Rich import for --help), and usage
    # errors stay one line in scripts.
    rich_markup_mode=None,
)


class GroupedCommand(typer.core.TyperCommand):
    """Plain click help (no Rich: `--help` stays fast) with the options in titled groups
    (cli/options.HELP_GROUPS); a command without groups lists them as click does."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        from charlm.cli.options import HELP_GROUPS

        groups = HELP_GROUPS.get(self.name or "")
        if not groups:
            return super().format_options(ctx, formatter)
        titled: dict[str, list[tuple[str, str]]] = {title: [] for title, _ in groups}
        where = {name: title for title, names in groups for name in names}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                titled.setdefault(where.get(param.name or "", "Other options"), []).append(record)
        for title, records in titled.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def err(msg: str) -> None:
    print(f"charlm: {msg}", file=sys.stderr, flush=True)


def guard(fn):
    """Turn library errors into one line and an exit code; CHARLM_DEBUG=1 shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CharlmError as e:
            if os.environ.get("CHARLM_DEBUG"):
                traceback.print_exc()
            if not getattr(e, "quiet", False):  # said once already (by rank 0 of torchrun)
                # a deliberate Ctrl-C or SIGTERM is no error: the work was saved first
                err(str(e) if isinstance(e, Interrupted) else f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as e:
            if os.environ.get("CHARLM_DEBUG"):
                raise
            if _out_of_memory(e):  # every command, as train already did: the documented 6
                err("error: out of memory; ask for less (fewer --num-samples, a shorter text or "
                    "prefix, a smaller --batch-size or model)")  # fmt: skip
                raise typer.Exit(EXIT_RESOURCES) from None
            if isinstance(e, OSError):  # a file or the disk failed under us: resources, 6
                where = f" ({e.filename})" if e.filename else ""
                err(f"error: {e.strerror or e}{where}; check the disk space and permissions")
                raise typer.Exit(EXIT_RESOURCES) from None
            if isinstance(e, UnicodeError):  # text that is not what it claims: data, 3
                err(f"error: {e}; check the file's encoding (--encoding)")
                raise typer.Exit(EXIT_DATA) from None
            err(
                f"unexpected error: {type(e).__name__}: {e} (rerun with CHARLM_DEBUG=1 for details)"
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper


def _out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError, or the allocator's RuntimeError on a CPU."""
    msg = str(e).lower()
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or (isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate" in msg))
    )


def _quiet_broken_pipe() -> None:
    # The reader went away (`| head`): point stdout at /dev/null so the interpreter's final
    # flush does not raise again on the way out.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def console(quiet: bool):
    """The Rich console every command writes its chatter to: stderr, never stdout."""
    from rich.console import Console  # here, not at the top: `charlm --help` stays fast

    # soft_wrap: log lines keep their length in a pipe or a narrow terminal instead of folding.
    return Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"charlm {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Character-level lyrics language models: train, generate, evaluate.

    Example: charlm train --corpus lyrics.zip --max-time 300 && charlm generate --prefix 分开
    """


def _sigterm(signum: int, _frame: object) -> None:
    # Outside the training loop (which saves first), SIGTERM unwinds like Ctrl-C: cleanup
    # handlers run, the lock is released, and the exit code is 143.
    raise Interrupted(signum)


_FAST_EXIT = False  # set by commands that write no files (see leave_fast)


def leave_fast() -> None:
    """This command writes no files: once its output is flushed, the process may end without
    the interpreter's teardown. Tearing torch down takes 0.5-0.8 s on a 2-core machine, a
    quarter of `charlm generate`'s wall time; nothing of charlm's is left to clean up."""
    global _FAST_EXIT
    _FAST_EXIT = True


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app()
    except SystemExit as e:
        if not _FAST_EXIT:
            raise
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away, a closed stream
                code = code or 0
        os._exit(code)
