"""Signals during training: the first SIGINT/SIGTERM asks the loop to save and stop at the
next step boundary; a second one leaves at once (an atomic save in progress cannot be damaged
by that: the previous file stays whole)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


class SignalGuard:
    """`with SignalGuard() as guard:` ... `if guard.signum is not None: stop`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            os._exit(143 if signum == signal.SIGTERM else 130)
        self.signum = signum

    def __enter__(self) -> SignalGuard:
        # Python delivers signals to the main thread only; elsewhere (tests) leave them be.
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
