"""Fixtures for the page's server: tiny runs, and a real server on a free port."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ..conftest import train_tiny

TINY = ["--cell", "gru", "--embed", "16", "--hidden", "32", "--batch-size", "8", "--seq-len",
        "16", "--max-steps", "30", "--eval-every", "15"]  # fmt: skip


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """Two tiny runs: a, and b (another seed, no count model: other text for a seed)."""
    ck = tmp_path_factory.mktemp("serve")
    train_tiny(ck, "a", *TINY, "--seed", "1")
    train_tiny(ck, "b", *TINY, "--seed", "2", "--kn-order", "0")
    return ck


@pytest.fixture(scope="session")
def live_server(runs_dir):
    """`charlm serve --port 0` as a user starts it: its URL, read from stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlm", "serve", "--port", "0", "--checkpoint-dir",
         str(runs_dir)], stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stderr.readline()
    found = re.search(r"http://\S+", line)
    assert found, line + proc.stderr.read()
    url = found.group(0)
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain it
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "api/status", timeout=2).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def copy_run(src: Path, dst: Path) -> None:
    dst.mkdir(exist_ok=True)
    shutil.copy2(src / "best.pt", dst / "best.pt")
