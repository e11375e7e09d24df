"""A lock file per run folder, so two trainers never write the same checkpoints."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from charlm.errors import ResourceError

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`with RunLock(run_dir):` holds `run_dir/.lock` (pid@host). A lock whose process is gone
    on this host is stale and taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.me = f"{os.getpid()}@{socket.gethostname()}"

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, _, host = holder.partition("@")
                stale = (
                    host == socket.gethostname()
                    and pid.isascii()
                    and pid.isdigit()
                    and not _alive(int(pid))
                )
                if stale or not holder:
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                raise ResourceError(
                    f"{self.path.parent}: another trainer (pid {holder}) is using this run; "
                    "wait for it, or pick another --run"
                ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(self.me)
            return
        raise ResourceError(f"{self.path}: could not take the run lock; remove it if stale")

    def release(self) -> None:
        if self._holder() == self.me:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
