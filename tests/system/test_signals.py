"""signals.py: the first SIGINT/SIGTERM is remembered, the second leaves at once."""

import os
import signal

import pytest

from charlm.system import signals
from charlm.system.signals import SignalGuard


class _Exited(Exception):
    pass


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_is_remembered_second_exits_at_once(monkeypatch, sig, code):
    def fake_exit(status):
        raise _Exited(status)

    monkeypatch.setattr(signals.os, "_exit", fake_exit)
    before = signal.getsignal(sig)
    with SignalGuard() as guard:
        os.kill(os.getpid(), sig)
        assert guard.signum == sig  # remembered: the loop stops at the next step boundary
        with pytest.raises(_Exited) as e:
            os.kill(os.getpid(), sig)
        assert e.value.args == (code,)
    assert signal.getsignal(sig) is before  # the previous handler is back
