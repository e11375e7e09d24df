"""User-facing errors. The CLI turns each into one line on stderr and its exit code."""

from __future__ import annotations

# Documented exit codes (README "Exit codes").
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_CHECKPOINT = 4
EXIT_DIVERGED = 5
EXIT_RESOURCES = 6
EXIT_PEER = 7  # another process of a torchrun run failed
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class CharlmError(Exception):
    """Base class: a message a user can act on, and the exit code that goes with it."""

    exit_code = EXIT_UNEXPECTED
    quiet = False  # True: exit with the code without printing (another process said it)


class UsageError(CharlmError):
    """A bad option value or combination."""

    exit_code = EXIT_USAGE


class DataError(CharlmError):
    """A corpus or prefix charlm cannot use."""

    exit_code = EXIT_DATA


class CheckpointError(CharlmError):
    """A missing, damaged, unsafe or incompatible checkpoint."""

    exit_code = EXIT_CHECKPOINT


class DivergedError(CharlmError):
    """Training produced non-finite values for too long."""

    exit_code = EXIT_DIVERGED


class ResourceError(CharlmError):
    """Out of memory, disk full, or the run folder is locked by another trainer."""

    exit_code = EXIT_RESOURCES


class PeerFailed(CharlmError):
    """Another process of a distributed run failed: its exit code where it told us, else 7."""

    def __init__(self, rank: int | None, message: str, exit_code: int = EXIT_PEER) -> None:
        self.exit_code = exit_code
        who = "another process" if rank is None else f"process {rank}"
        super().__init__(f"stopped because {who} of this torchrun run failed: {message}")


class Interrupted(CharlmError):
    """SIGINT or SIGTERM arrived; raised after the work in hand has been saved."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT
        name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
        super().__init__(f"interrupted by {name}")
