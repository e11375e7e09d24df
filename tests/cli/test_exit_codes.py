"""Every command maps what can escape it to a documented exit code, with one line on stderr
and no traceback: out of memory and a failing disk are 6, text that is not what it claims 3."""

import errno

import pytest

from ..conftest import invoke, train_tiny

ERRORS = [
    (MemoryError(), 6),
    (OSError(errno.ENOSPC, "No space left on device", "/full/disk"), 6),
    (PermissionError(errno.EACCES, "Permission denied", "/locked"), 6),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 3),
]


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    tiny = ["--hidden", "16", "--embed", "8", "--max-steps", "4", "--eval-every", "4"]
    return train_tiny(tmp_path_factory.mktemp("codes"), "r", *tiny)


def commands(ck):
    """(command line, module, function the command calls deep down) for each command."""
    corpus = str(ck / "lyrics.txt")
    return [
        (["train", "--corpus", corpus, "--run", "x", "--checkpoint-dir", ck],
         "charlm.training.setup", "read_corpus"),
        (["generate", "--checkpoint-dir", ck, "--seed", "1"], "charlm.store.checkpoint", "load"),
        (["evaluate", "--checkpoint-dir", ck], "charlm.store.checkpoint", "load"),
        (["info", "--checkpoint", "r", "--checkpoint-dir", ck], "charlm.store.checkpoint", "load"),
        (["runs", "--checkpoint-dir", ck], "charlm.store.listing", "list_runs"),
        (["scan", corpus], "charlm.generation.form.scan", "scan"),
        (["plot", "r", "--terminal", "--checkpoint-dir", ck], "charlm.training.curves",
         "load_series"),
    ]  # fmt: skip


@pytest.mark.parametrize(("error", "code"), ERRORS, ids=lambda x: type(x).__name__)
def test_each_command_maps_injected_errors_to_their_code(ck, runner, monkeypatch, error, code):
    import importlib

    for args, module, name in commands(ck):

        def boom(*a, **k):
            raise error

        with monkeypatch.context() as m:
            m.setattr(importlib.import_module(module), name, boom)
            r = invoke(runner, args)
        assert r.exit_code == code, (args[0], r.stderr)
        assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
