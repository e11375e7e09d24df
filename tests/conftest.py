"""Shared fixtures: tiny corpora built in tmp_path, a CLI runner that keeps stderr apart."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charlm.cli import app

# caches a test makes outside its run folders (the shipped base's lexicon tables) go here, not
# into the user's ~/.cache; subprocesses inherit it
os.environ.setdefault("CHARLM_CACHE_DIR", tempfile.mkdtemp(prefix="charlm-test-cache-"))

SHARED_JAYCHOU = (
    Path(__file__).resolve().parents[2] / "shared" / "corpora" / "jaychou_lyrics.txt.zip"
)

LINES = [
    "分开的时候我还在想你",
    "不分开就在一起唱歌",
    "天空下雨我还在等你",
    "窗外的麻雀在电线杆上多嘴",
    "我想就这样牵着你的手不放开",
    "爱能不能够永远单纯没有悲哀",
]


def tiny_text(repeats: int = 40) -> str:
    """Lyrics-like text of a few thousand characters with a small vocabulary."""
    return "".join(LINES[(i * 7) % len(LINES)] + "\n" for i in range(repeats * len(LINES)))


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    p = tmp_path / "lyrics.txt"
    p.write_text(tiny_text(), encoding="utf-8")
    return p


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def tree_digest(root: Path) -> dict[str, str]:
    """Checksums of every file under root: proof that a failed command changed nothing."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


TINY_TRAIN = [
    "--cell", "gru", "--embed", "16", "--hidden", "32", "--layers", "1", "--dropout", "0",
    "--batch-size", "8", "--seq-len", "16", "--eval-every", "20", "--seed", "3",
    "--warmup", "0", "--early-stop", "0",
]  # fmt: skip


def train_tiny(ck: Path, run: str, *extra: str) -> Path:
    """Train a run named `run` on tiny_text() (written to ck/lyrics.txt) under the checkpoint
    folder ck, with the given options; for module fixtures that need a real checkpoint."""
    corpus = ck / "lyrics.txt"
    if not corpus.exists():
        ck.mkdir(parents=True, exist_ok=True)
        corpus.write_text(tiny_text(), encoding="utf-8")
    args = ["train", "--corpus", str(corpus), "--run", run, "--checkpoint-dir", str(ck), *extra]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return ck
