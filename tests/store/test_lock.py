"""lock.py: one trainer per run folder; a stale lock is taken over."""

import os
import socket

import pytest

from charlm.errors import ResourceError
from charlm.store.lock import LOCK_NAME, RunLock


def test_second_holder_is_refused_naming_the_first(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}@{socket.gethostname()}"
        other = RunLock(tmp_path)
        other.me = "999999@elsewhere"
        with pytest.raises(ResourceError, match=f"pid {os.getpid()}"):
            other.acquire()
    assert not (tmp_path / LOCK_NAME).exists()  # released on the way out


def test_stale_and_empty_locks_are_taken_over(tmp_path):
    lock = tmp_path / LOCK_NAME
    for stale in (f"2147480000@{socket.gethostname()}", ""):  # a dead pid here; an empty file
        lock.write_text(stale)
        with RunLock(tmp_path):
            assert lock.read_text().startswith(f"{os.getpid()}@")
        assert not lock.exists()


def test_a_live_lock_on_another_host_is_respected(tmp_path):
    (tmp_path / LOCK_NAME).write_text("1@some-other-host")
    with pytest.raises(ResourceError, match="another trainer"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == "1@some-other-host"  # never removed


def test_release_leaves_a_lock_taken_by_someone_else(tmp_path):
    mine = RunLock(tmp_path)
    mine.acquire()
    (tmp_path / LOCK_NAME).write_text("1@some-other-host")
    mine.release()
    assert (tmp_path / LOCK_NAME).exists()
