"""Every field of a checkpoint that charlm reads back, damaged one at a time in a file whose
digest still matches (another charlm wrote it, or a person did): each command that reads the
field refuses it with exit 4 and one line naming it, never a traceback, never a silent
default. (A damaged byte under the digest is test_checkpoint's: the digest refuses it.)"""

import copy

import pytest
import torch

from charlm.store import checkpoint
from tests.conftest import TINY_TRAIN, invoke, train_tiny

# field -> how to damage it, which commands read it (resume reads everything in last.pt)
CASES = {
    "progress: unknown field": (lambda p: p["progress"].__setitem__("bogus", 1), "resume"),
    "progress: missing step": (lambda p: p["progress"].pop("step"), "resume"),
    "progress: step as text": (lambda p: p["progress"].__setitem__("step", "ten"), "resume"),
    "progress: generator state": (lambda p: p["progress"]["rng"].__setitem__("torch", 5),
                                  "resume"),
    "progress: song cache": (lambda p: p["progress"].__setitem__("adapt", {"x": 1}), "resume"),
    "carry": (lambda p: p.__setitem__("carry", [5]), "resume"),
    "optimizer_state": (lambda p: p.__setitem__("optimizer_state", {"state": 5}), "resume"),
    "train_config": (lambda p: p["train_config"].__setitem__("lr", "fast"), "resume"),
    "model_config": (lambda p: p["model_config"].__setitem__("hidden", "big"), "all"),
    "vocab": (lambda p: p.__setitem__("vocab", ["<unk>", "ab"]), "all"),
    "corpus: not a mapping": (lambda p: p.__setitem__("corpus", 5), "all"),
    "corpus: unknown option": (lambda p: p["corpus"]["options"].__setitem__("bogus", 1),
                               "resume"),
    "metrics": (lambda p: p.__setitem__("metrics", 5), "all"),
    "base": (lambda p: p.__setitem__("base", "zh"), "all"),
}  # fmt: skip


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    ck = tmp_path_factory.mktemp("readback")
    train_tiny(ck, "a", *TINY_TRAIN, "--max-steps", "20")
    return ck


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_field_is_refused_by_name(runner, ck, case):
    damage, readers = CASES[case]
    run = "d_" + "".join(c if c.isalnum() else "_" for c in case)
    (ck / run).mkdir()
    for name in ("last.pt", "best.pt"):
        p = checkpoint.load(ck / "a" / name)
        p = {k: v if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in p.items()}
        if name == "last.pt" or readers == "all":
            damage(p)
        p["digest"] = checkpoint.payload_digest(p)  # the digest matches: only the field is off
        checkpoint.save(p, ck / run / name)
    before = (ck / run / "last.pt").read_bytes()
    r = invoke(runner, ["train", "--run", run, "--resume", "--checkpoint-dir", ck,
                        "--max-steps", "30"])  # fmt: skip
    assert r.exit_code == 4, (case, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("charlm: ")]
    assert errors == [r.stderr.splitlines()[-1]] and errors[0].startswith("charlm: error: ")
    assert "Traceback" not in r.stderr and (ck / run / "last.pt").read_bytes() == before
    if readers == "all":
        g = invoke(runner, ["generate", "--checkpoint", run, "--checkpoint-dir", ck,
                            "--length", "5"])  # fmt: skip
        assert g.exit_code == 4 and g.stderr.startswith("charlm: error: "), (case, g.stderr)
