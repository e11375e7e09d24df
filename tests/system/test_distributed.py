"""`charlm train` as 2 processes on the CPU (gloo on the loopback address), started the way
torchrun starts them: the same command, with RANK / WORLD_SIZE / MASTER_* in the environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charlm.errors import EXIT_DATA, EXIT_PEER, EXIT_SIGTERM
from charlm.store import checkpoint

TIMEOUT = 60  # seconds: a hang fails the test instead of the suite
COMMON = ("--hidden", "24", "--embed", "8", "--seq-len", "12", "--eval-every", "6",
          "--seed", "5", "--dropout", "0", "--sampler", "consecutive", "--kn-order", "3",
          "--unk-prob", "0", "--precision", "fp32")  # fmt: skip
# fp32: compared across process counts, bf16's rounding (the default where the CPU has it)
# would swamp the 1e-5 the tests hold the two runs to.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, world: int, port: int) -> dict[str, str]:
    return {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NO_COLOR": "1"}  # fmt: skip


def start(ck: Path, *args: str, world: int = 2, per_rank=None) -> list[subprocess.Popen]:
    """`world` processes of `charlm train`; per_rank(rank) -> extra arguments for that rank."""
    port, procs = _free_port(), []
    for rank in range(world):
        extra = per_rank(rank) if per_rank else ()
        cmd = [sys.executable, "-m", "charlm", "train", "--checkpoint-dir", str(ck), *args, *extra]
        procs.append(subprocess.Popen(cmd, env=_env(rank, world, port), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    return procs


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each; kills them all if any outlives TIMEOUT."""
    out = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=TIMEOUT)
            out.append((p.returncode, o, e))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("the processes hung")
    return out


def run(ck: Path, *args: str, world: int = 2, per_rank=None) -> list[tuple[int, str, str]]:
    if world == 1:  # one process, no process group: plain charlm
        cmd = [sys.executable, "-m", "charlm", "train", "--checkpoint-dir", str(ck), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
        return [(p.returncode, p.stdout, p.stderr)]
    return finish(start(ck, *args, world=world, per_rank=per_rank))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    chars = "春夏秋冬风花雪月山水云天"
    lines = ["".join(chars[i] for i in torch.randint(12, (int(n),), generator=g))
             for n in torch.randint(4, 10, (1500,), generator=g)]  # fmt: skip
    path = tmp_path_factory.mktemp("corpus") / "poems.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return checkpoint.load(run_dir / name)["model_state"]


def assert_close(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol), k


@pytest.fixture(scope="module")
def two_and_one(corpus, tmp_path_factory):
    """The same 18 steps as 2 processes x 6 rows (rank 1 given its own --checkpoint-dir, as a
    node without a shared disk would be) and as 1 process x 12 rows."""
    ck, other = tmp_path_factory.mktemp("ck"), tmp_path_factory.mktemp("rank1")
    args = ("--corpus", str(corpus), *COMMON, "--max-steps", "18", "--json")
    two = run(ck, *args, "--run", "two", "--batch-size", "6",
              per_rank=lambda r: ("--checkpoint-dir", str(other)) if r else ())  # fmt: skip
    one = run(ck, *args, "--run", "one", "--batch-size", "12", world=1)
    return ck, other, two, one


@pytest.mark.slow  # two processes training: the full suite (CI) runs it
def test_two_processes_follow_one_process_with_the_same_global_batch(two_and_one):
    ck, _, two, one = two_and_one
    assert [rc for rc, _, _ in two + one] == [0, 0, 0], two
    assert_close(weights(ck / "two"), weights(ck / "one"))
    p2, p1 = (checkpoint.load(ck / r / "last.pt") for r in ("two", "one"))
    assert p2["progress"]["step"] == p1["progress"]["step"] == 18
    assert p2["progress"]["best_val_ppl"] == pytest.approx(p1["progress"]["best_val_ppl"], 1e-5)
    assert p2["kn"]["weight"] == pytest.approx(p1["kn"]["weight"], abs=1e-4)
    # the carried state of all 12 streams is saved, rank 1's rows after rank 0's
    assert [tuple(c.shape) for c in p2["carry"]] == [(1, 12, 24), (1, 12, 24)]
    assert torch.allclose(p2["carry"][0], p1["carry"][0], atol=1e-5)
    tc = p2["train_config"]
    assert (tc["processes"], tc["batch_size"]) == (2, 6)


@pytest.mark.slow  # two processes training: the full suite (CI) runs it
def test_only_rank_0_writes_and_prints(two_and_one):
    ck, other, two, _ = two_and_one
    (_, out0, err0), (_, out1, err1) = two
    assert '"stopped": "max-steps"' in out0 and "2 processes (gloo)" in err0
    assert out1 == "" and err1 == ""
    assert list(other.iterdir()) == []  # nothing in rank 1's own folder
    lines = (ck / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # steps 6, 12, 18: one writer


@pytest.mark.slow
def test_resume_under_two_processes_continues_exactly(corpus, two_and_one, tmp_path):
    ck = two_and_one[0]
    args = ("--corpus", str(corpus), *COMMON, "--batch-size", "6")
    assert [r[0] for r in run(tmp_path, *args, "--run", "r", "--max-steps", "12")] == [0, 0]
    resumed = run(tmp_path, *args, "--run", "r", "--resume", "--max-steps", "18")
    assert [r[0] for r in resumed] == [0, 0], resumed
    assert_close(weights(tmp_path / "r"), weights(ck / "two"), atol=0)  # bitwise


@pytest.mark.slow
def test_resume_on_another_number_of_processes_keeps_the_global_batch(
    corpus, two_and_one, tmp_path
):
    ck = two_and_one[0]
    args = ("--corpus", str(corpus), *COMMON, "--run", "r")
    assert run(tmp_path, *args, "--batch-size", "6", "--max-steps", "12")[0][0] == 0
    [(rc, _, err)] = run(tmp_path, *args, "--resume", "--max-steps", "18", world=1)
    assert rc == 0, err
    assert "resume: batch_size 6 -> 12" in err and "resume: processes 2 -> 1" in err
    assert_close(weights(tmp_path / "r"), weights(ck / "two"))
    # 5 processes cannot share the global batch of 12: refused, saying what would work
    refused = run(tmp_path, *args, "--resume", "--max-steps", "24", world=5)
    assert {rc for rc, _, _ in refused} == {4}
    assert "divides 12" in refused[0][2]


@pytest.mark.slow  # two processes training: the full suite (CI) runs it
def test_an_error_on_rank_1_stops_both_with_its_exit_code(corpus, tmp_path):
    # rank 1 cannot read its corpus: the data error's code (3) on both, without a hang
    t0 = time.monotonic()
    missing = ("--corpus", str(tmp_path / "missing.txt"))
    res = run(tmp_path, "--corpus", str(corpus), *COMMON, "--max-steps", "6",
              per_rank=lambda r: missing if r else ())  # fmt: skip
    assert [rc for rc, _, _ in res] == [EXIT_DATA, EXIT_DATA], res
    assert "missing.txt" in res[1][2] and "process 1" in res[0][2]
    assert time.monotonic() - t0 < TIMEOUT
    assert not any(tmp_path.glob("*/*.pt"))  # no run folder left behind


def start_long(tmp_path: Path, corpus: Path, run: str) -> tuple[list[subprocess.Popen], Path]:
    """A 2-process run with no step limit, returned once its first last.pt exists."""
    procs = start(tmp_path, "--corpus", str(corpus), *COMMON, "--batch-size", "6",
                  "--run", run, "--max-steps", "100000", "--eval-every", "50")  # fmt: skip
    last = tmp_path / run / "last.pt"
    deadline = time.monotonic() + TIMEOUT
    while not last.exists() and time.monotonic() < deadline:  # training has begun
        time.sleep(0.1)
    return procs, last


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_and_saves(corpus, tmp_path):
    procs, last = start_long(tmp_path, corpus, "s")
    procs[1].send_signal(signal.SIGTERM)
    (rc0, _, err0), (rc1, _, err1) = finish(procs)
    assert (rc0, rc1) == (EXIT_SIGTERM, EXIT_SIGTERM), err0 + err1
    assert "resume with" in err0 and err1 == ""
    metrics = (last.parent / "metrics.jsonl").read_text().splitlines()
    evaluated = [json.loads(x)["step"] for x in metrics]
    assert checkpoint.load(last)["progress"]["step"] > evaluated[-1]  # where it stopped


@pytest.mark.slow
def test_a_process_that_dies_stops_the_others(corpus, tmp_path):
    procs, last = start_long(tmp_path, corpus, "k")
    procs[1].kill()  # no chance to say anything
    (rc0, _, err0), _ = finish(procs)
    assert rc0 == EXIT_PEER and "another process" in err0, err0
    assert checkpoint.load(last)["progress"]["step"] % 50 == 0  # the last evaluation's, whole


def test_each_process_takes_its_own_rows_and_dropout_stream():
    from charlm.system.distributed import Dist

    one, second = Dist(), Dist(rank=1, world=2)
    assert second.rows(4) == slice(4, 8) and one.rows(4) == slice(0, 4)
    # evaluation streams: ceil-sized shares, the last may be short or empty
    assert [Dist(rank=r, world=3).stream_rows(7) for r in range(3)] == [
        slice(0, 3), slice(3, 6), slice(6, 7)]  # fmt: skip
    assert Dist(rank=1, world=2).stream_rows(1) == slice(1, 1)
    carry = [torch.arange(2 * 8 * 3.0).view(2, 8, 3)]  # (L, 2 processes x 4 rows, H)
    assert torch.equal(second.my_rows(carry, 4)[0], carry[0][:, 4:8])
    assert second.my_rows(carry, 3) == []  # not this run's rows: start from zeros
    rng = {"torch": torch.zeros(3, dtype=torch.uint8), "torch_ranks": [torch.ones(1)] * 3}
    assert torch.equal(one.dropout_rng(rng, seed=5, step=9), rng["torch"])  # 3 -> 1 process
    fresh = second.dropout_rng(rng, seed=5, step=9)  # 3 -> 2: a stream of its own
    assert torch.equal(fresh, second.dropout_rng(rng, seed=5, step=9))
    assert not torch.equal(fresh, Dist(rank=1, world=2).dropout_rng(rng, seed=5, step=10))
    same = {**rng, "torch_ranks": [torch.zeros(1), torch.full((1,), 7)]}
    assert torch.equal(second.dropout_rng(same, seed=5, step=9), same["torch_ranks"][1])


def test_ranks_without_saved_streams_draw_different_dropout_masks():
    """Resumed on more processes than saved: every new rank gets a stream of its own (two
    ranks with one stream would drop the same units of their different rows)."""
    from charlm.system.distributed import Dist

    rng = {"torch": torch.zeros(3, dtype=torch.uint8)}
    streams = [Dist(rank=r, world=3).dropout_rng(rng, seed=5, step=9) for r in (1, 2)]
    assert not torch.equal(*streams)


def test_the_agreed_signal_prefers_sigterm(monkeypatch):
    """The launcher's SIGTERM beats a user's SIGINT on another process: the exit code and
    what is saved must be the launcher's, on every process alike."""
    from charlm.system.distributed import Dist

    d = Dist(rank=0, world=2)
    monkeypatch.setattr(Dist, "sum", lambda self, v: [v[0] * 2, 1.0, 1.0, v[3] * 2])
    assert d.agree(1.5, signal.SIGINT, 0.25) == (1.5, signal.SIGTERM, 0.25)
    monkeypatch.setattr(Dist, "sum", lambda self, v: [v[0] * 2, 1.0, 0.0, v[3] * 2])
    assert d.agree(1.5, None, 0.25)[1] == signal.SIGINT
    monkeypatch.setattr(Dist, "sum", lambda self, v: [v[0] * 2, 0.0, 0.0, v[3] * 2])
    assert d.agree(1.5, None, 0.25)[1] is None


def test_a_follower_that_reads_another_corpus_is_refused(tmp_path):
    """README: "a different file at the same path on another node is refused"."""
    from charlm.errors import DataError
    from charlm.training.options import TrainOptions
    from charlm.training.setup import follow, plan_of, prepare

    corpus = tmp_path / "lyrics.txt"
    corpus.write_text("分开不了\n我爱你\n" * 200, encoding="utf-8")
    opts = TrainOptions(corpus=str(corpus), hidden=16, batch_size=4, seq_len=8, run="r")
    plan = plan_of(prepare(opts, tmp_path / "ck", torch.device("cpu"), echo=lambda s: None))
    assert list(follow(plan, opts, tmp_path / "ck").data.vocab.tokens) == plan["vocab"]
    corpus.write_text("分开不了\n我爱他\n" * 200, encoding="utf-8")  # another node's file
    with pytest.raises(DataError, match="different corpus from process 0's"):
        follow(plan, opts, tmp_path / "ck")
