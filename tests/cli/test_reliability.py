"""Reliability cases through the real CLI (encodings, damaged zips and checkpoints, divergence,
out of memory, locks): exit code, one-line message, empty stdout, and every file that existed
before is byte-identical after."""

from __future__ import annotations

import zipfile

import pytest
import torch

from ..conftest import TINY_TRAIN, invoke, tiny_text, tree_digest


def _train(runner, corpus, ck, *extra):
    return invoke(
        runner, ["train", "--corpus", corpus, "--checkpoint-dir", ck, *TINY_TRAIN, *extra]
    )


def _fails_cleanly(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert r.stdout == ""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("charlm: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


# ---- corpus -----------------------------------------------------------------------------------


def test_gb18030_corpus_error_then_encoding_trains(runner, tmp_path):
    p = tmp_path / "gbk.txt"
    p.write_bytes(tiny_text(10).encode("gb18030"))
    before = tree_digest(tmp_path)
    r = _train(runner, p, tmp_path / "ck", "--max-steps", "2")
    _fails_cleanly(r, 3, str(p), "byte 0", "--encoding gb18030")
    assert tree_digest(tmp_path) == before
    r = _train(runner, p, tmp_path / "ck", "--max-steps", "2", "--encoding", "gb18030")
    assert r.exit_code == 0, r.stderr


def test_crlf_bom_corpus_vocab_is_clean(runner, tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes(b"\xef\xbb\xbf" + tiny_text(10).replace("\n", "\r\n").encode())
    ck = tmp_path / "ck"
    assert _train(runner, p, ck, "--max-steps", "2", "--run", "r").exit_code == 0
    vocab = torch.load(ck / "r" / "best.pt", weights_only=True)["vocab"]
    assert "\r" not in vocab and "\ufeff" not in vocab and "\n" in vocab


@pytest.mark.parametrize("kind", ["binary", "empty", "empty-folder", "zip-only-folders"])
def test_nothing_usable_exit_3(runner, tmp_path, kind):
    if kind == "binary":
        src = tmp_path / "song.txt"
        src.write_bytes(b"\x00\x01\x02PNG" * 100)
    elif kind == "empty":
        src = tmp_path / "song.txt"
        src.write_bytes(b"")
    elif kind == "empty-folder":
        src = tmp_path / "songs"
        src.mkdir()
        (src / "a.txt").write_bytes(b"")
        (src / "b.txt").write_bytes(b"\n\n")
    else:
        src = tmp_path / "c.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("a/", "")
            zf.writestr("a/b/", "")
    before = tree_digest(tmp_path)
    r = _train(runner, src, tmp_path / "ck")
    _fails_cleanly(r, 3, str(src))
    assert tree_digest(tmp_path) == before and not (tmp_path / "ck").exists()


def test_binary_member_skipped_with_note(runner, tmp_path):
    src = tmp_path / "c.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("cover.txt", b"\x00\xff\x00" * 50)
        zf.writestr("lyrics.txt", tiny_text(10))
    r = _train(runner, src, tmp_path / "ck", "--max-steps", "2")
    assert r.exit_code == 0 and "skipped" in r.stderr and "cover.txt" in r.stderr


def test_truncated_zip_exit_3(runner, tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", tiny_text(10))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _fails_cleanly(_train(runner, bad, tmp_path / "ck"), 3, str(bad))


def test_encrypted_zip_exit_3(runner, tmp_path):
    p = tmp_path / "enc.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.txt", tiny_text(10))
    data = bytearray(p.read_bytes())
    # Set the "encrypted" flag bit in the local and central headers.
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.index(sig)
        data[i + off] |= 0x1
    p.write_bytes(bytes(data))
    _fails_cleanly(_train(runner, p, tmp_path / "ck"), 3, "encrypted")


def test_zip_bomb_stopped_by_size_limit(runner, tmp_path):
    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.txt", "啊" * 2_000_000)  # 6 MB of text, a few KB zipped
    assert p.stat().st_size < 100_000
    r = _train(runner, p, tmp_path / "ck", "--max-corpus-bytes", "1000000")
    _fails_cleanly(r, 3, "--max-corpus-bytes", "big.txt")


def test_zip_member_name_with_dotdot_is_never_written(runner, tmp_path):
    p = tmp_path / "evil.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("../../escaped.txt", tiny_text(10))
    inner = tmp_path / "work"
    inner.mkdir()
    r = _train(runner, p, inner / "ck", "--max-steps", "2")
    assert r.exit_code == 0
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_gbk_member_names_shown_correctly(monkeypatch, tmp_path):
    from charlm.data.corpus import read_corpus

    p = tmp_path / "gbk-names.zip"
    orig = zipfile.ZipInfo._encodeFilenameFlags

    def gbk_names(self):  # what Windows zip tools write: GBK bytes, no UTF-8 flag
        try:
            return self.filename.encode("gbk"), self.flag_bits & ~0x800
        except UnicodeEncodeError:
            return orig(self)

    monkeypatch.setattr(zipfile.ZipInfo, "_encodeFilenameFlags", gbk_names)
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("歌词.txt", b"")
        zf.writestr("z.txt", tiny_text(2))
    monkeypatch.undo()
    c = read_corpus(str(p))
    assert any("歌词.txt" in n for n in c.notes)


def test_missing_corpus(runner, tmp_path):
    _fails_cleanly(
        _train(runner, tmp_path / "nope.zip", tmp_path / "ck"), 3, "nope.zip", "--corpus"
    )


# ---- checkpoints ------------------------------------------------------------------------------


@pytest.fixture
def run_ck(runner, corpus_file, tmp_path):
    ck = tmp_path / "ck"
    r = _train(runner, corpus_file, ck, "--run", "r", "--max-steps", "10")
    assert r.exit_code == 0, r.stderr
    return ck


@pytest.mark.parametrize("damage", ["empty", "text", "truncated", "flipped", "foreign"])
def test_damaged_checkpoint_exit_4(runner, run_ck, damage):
    best = run_ck / "r" / "best.pt"
    data = best.read_bytes()
    if damage == "empty":
        best.write_bytes(b"")
    elif damage == "text":
        best.write_text("not a checkpoint\n")
    elif damage == "truncated":
        best.write_bytes(data[: len(data) // 3])
    elif damage == "flipped":
        # flip one byte inside the largest tensor's stored bytes
        with zipfile.ZipFile(best) as zf:
            info = max(zf.infolist(), key=lambda i: i.file_size)
        off = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 100
        buf = bytearray(data)
        buf[off] ^= 0xFF
        best.write_bytes(bytes(buf))
    else:
        torch.save({"model": torch.zeros(3)}, best)
    before = tree_digest(run_ck)
    r = invoke(runner, ["generate", "--checkpoint-dir", run_ck, "--checkpoint", best])
    _fails_cleanly(r, 4, str(best))
    r = invoke(runner, ["evaluate", "--checkpoint", best])
    _fails_cleanly(r, 4, str(best))
    assert tree_digest(run_ck) == before


def test_generate_needs_only_best(runner, run_ck, corpus_file):
    (run_ck / "r" / "last.pt").unlink()
    corpus_file.unlink()
    r = invoke(runner, ["generate", "--checkpoint", run_ck / "r" / "best.pt", "--seed", "1",
                        "--length", "10"])  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("分开")


def test_resume_refuses_bad_last(runner, run_ck, corpus_file):
    last = run_ck / "r" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    before = tree_digest(run_ck)
    r = invoke(runner, ["train", "--checkpoint-dir", run_ck, "--run", "r", "--resume"])
    _fails_cleanly(r, 4, str(last))
    assert tree_digest(run_ck) == before


def test_resume_of_an_older_format_is_refused_by_name(runner, run_ck):
    import torch

    from charlm.store import checkpoint

    last = run_ck / "r" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["format_version"] = 1
    payload["digest"] = checkpoint.tensor_digest(payload["model_state"])  # what format 1 kept
    torch.save(payload, last)
    before = tree_digest(run_ck)
    r = invoke(runner, ["train", "--checkpoint-dir", run_ck, "--run", "r", "--resume"])
    _fails_cleanly(r, 4, "format 1")
    assert "new --run" in r.stderr and tree_digest(run_ck) == before


# ---- training faults --------------------------------------------------------------------------


def test_divergence_exit_5_best_untouched(runner, corpus_file, tmp_path):
    ck = tmp_path / "ck"
    r = _train(runner, corpus_file, ck, "--run", "d", "--max-steps", "10")
    assert r.exit_code == 0
    before = tree_digest(ck)
    r = invoke(runner, ["train", "--checkpoint-dir", ck, "--run", "d", "--resume", "--lr", "1e30",
                        "--clip", "0", "--max-steps", "400"])  # fmt: skip
    assert r.exit_code == 5, r.stderr
    assert "--lr" in r.stderr and "--clip" in r.stderr and r.stdout == ""
    assert tree_digest(ck)["d/best.pt"] == before["d/best.pt"]


def test_out_of_memory_exit_6(runner, corpus_file, tmp_path, monkeypatch):
    from charlm.models import charrnn as model

    def oom(self, x, state=None, targets=None):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(model.CharRNN, "forward", oom)
    r = _train(runner, corpus_file, tmp_path / "ck")
    _fails_cleanly(r, 6, "--batch-size 8")
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").rglob("*.pt"))


def test_locked_run_exit_6_and_stale_lock_recovered(runner, run_ck, corpus_file):
    import os
    import socket

    lock = run_ck / "r" / ".lock"
    lock.write_text(f"{os.getpid()}@{socket.gethostname()}")  # a live holder: this process
    before = tree_digest(run_ck)
    r = invoke(runner, ["train", "--checkpoint-dir", run_ck, "--run", "r", "--resume"])
    _fails_cleanly(r, 6, str(os.getpid()), "another trainer")
    assert tree_digest(run_ck) == before
    lock.write_text(f"999999999@{socket.gethostname()}")  # no such process: stale
    r = invoke(runner, ["train", "--checkpoint-dir", run_ck, "--run", "r", "--resume",
                        "--max-steps", "12"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert not lock.exists()


# ---- CLI contract -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["--cell", "transformer"], ["--dropout", "1.5"], ["--sampler", "zigzag"], ["--lr", "-1"],
     ["--val-fraction", "1"], ["--device", "tpu"]],
)  # fmt: skip
def test_bad_train_options_exit_2(runner, corpus_file, tmp_path, args):
    before = tree_digest(tmp_path)
    r = invoke(
        runner, ["train", "--corpus", corpus_file, "--checkpoint-dir", tmp_path / "ck", *args]
    )
    _fails_cleanly(r, 2, args[0])
    assert tree_digest(tmp_path) == before


def test_quiet_prints_nothing_but_data(runner, corpus_file, tmp_path):
    ck = tmp_path / "ck"
    r = _train(runner, corpus_file, ck, "--max-steps", "3", "--quiet")
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""
    r = invoke(runner, ["generate", "--checkpoint-dir", ck, "--quiet", "--length", "5"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout.startswith("分开")


def test_chorus_and_long_lines_verbatim(runner, tmp_path):
    line = "[Chorus] " + "我们一起唱这首很长很长的歌" * 8
    p = tmp_path / "long.txt"
    p.write_text((line + "\n") * 60, encoding="utf-8")
    ck = tmp_path / "ck"
    r = _train(runner, p, ck, "--max-steps", "60", "--lr", "0.02", "--preview", "[Chorus]")
    assert r.exit_code == 0, r.stderr
    assert "[Chorus]" in r.stderr  # previews are not eaten as Rich markup
    r = invoke(runner, ["generate", "--checkpoint-dir", ck, "--prefix", line, "--length", "3",
                        "--seed", "1"])  # fmt: skip
    assert r.stdout.startswith(line)


NO_MEMORY = [MemoryError(), torch.OutOfMemoryError("CUDA out of memory"),
             RuntimeError("DefaultCPUAllocator: can't allocate memory")]  # fmt: skip


@pytest.mark.parametrize("error", NO_MEMORY)
def test_generate_out_of_memory_exits_6(runner, run_ck, monkeypatch, error):
    """Bug: generate that ran out of memory (a long prefix x thousands of samples) exited 1
    with "unexpected error", where train already mapped the same error to 6."""
    import charlm.api

    def no_memory(*a, **k):
        raise error

    monkeypatch.setattr(charlm.api, "generate", no_memory)
    r = invoke(runner, ["generate", "--checkpoint-dir", run_ck, "--seed", "1"])
    assert r.exit_code == 6 and r.stdout == "" and "out of memory" in r.stderr


@pytest.mark.parametrize("where", ["is", "through"])
def test_a_checkpoint_dir_that_is_a_file_is_refused_before_reading(runner, tmp_path, where):
    """Bug: a --checkpoint-dir that is (or passes through) a regular file ended in
    NotADirectoryError, exit 1, after the corpus was read."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file", encoding="utf-8")
    ckdir = blocker if where == "is" else blocker / "runs"
    missing = tmp_path / "no-such-corpus.txt"  # reading it would be exit 3: it is never read
    r = invoke(runner, ["train", "--corpus", missing, "--checkpoint-dir", ckdir])
    assert r.exit_code == 2 and "--checkpoint-dir" in r.stderr and "a file" in r.stderr
    assert blocker.read_text(encoding="utf-8") == "a file"
