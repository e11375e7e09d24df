"""Averaged networks: the Ensemble model and stepper, their checkpoints, and a run that grows
a second member when the first stops improving with time left."""

from __future__ import annotations

import json
import math

import pytest
import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError
from charlm.models.charrnn import CharRNN
from charlm.models.ensemble import Ensemble, make_stepper, networks
from charlm.store import checkpoint

from ..conftest import TINY_TRAIN, invoke

CFG = ModelConfig(vocab_size=11, cell="lstm", embed=6, hidden=8, layers=2, dropout=0.0)


def make(k: int = 3) -> Ensemble:
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(CharRNN(CFG).eval())
    return Ensemble(nets).eval()


def test_the_ensemble_averages_probabilities_and_carries_each_members_state():
    ens, x = make(), torch.randint(11, (2, 9))
    out, state = ens(x)  # (B, T, V), tuple of (K*L, B, H)
    probs = torch.stack([torch.softmax(m(x)[0], -1) for m in ens.members]).mean(0)
    assert torch.allclose(out.exp(), probs, atol=1e-6)
    assert [tuple(s.shape) for s in state] == [(6, 2, 8), (6, 2, 8)]
    first, s = ens(x[:, :4])
    rest, s2 = ens(x[:, 4:], s)  # chunked with the carried state == all at once
    assert torch.allclose(torch.cat([first, rest], 1), out, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(s2, state, strict=True))


def test_the_ensemble_stepper_matches_the_full_forward():
    ens, x = make(), torch.randint(11, (2, 7))
    full, _ = ens(x)
    _, state = ens(x[:, :-1])
    stepper = make_stepper(ens)
    logits, _ = stepper.step(x[:, -1], stepper.split(state))  # (B, V)
    assert torch.allclose(torch.log_softmax(logits, -1), full[:, -1], atol=1e-5)


def test_an_ensemble_checkpoint_round_trips_and_its_members_are_covered(tmp_path):
    ens = make(2)
    payload = checkpoint.build_payload(ens, CFG, Vocab(["<unk>", *"abcdefghij"]), {})
    assert len(payload["members"]) == 1
    checkpoint.save(payload, tmp_path / "e.pt")
    back, _, _ = checkpoint.restore_model(checkpoint.load(tmp_path / "e.pt"), "e.pt")
    x = torch.randint(11, (1, 5))
    assert len(networks(back)) == 2 and torch.allclose(back(x)[0], ens(x)[0], atol=1e-6)
    member = payload["members"][0]
    name = next(iter(member))
    member[name] = member[name] + 1  # damage in the second network is caught too
    with pytest.raises(CheckpointError, match="stored digest"):
        checkpoint.validate(payload, "e.pt")
    wrong = {**payload, "members": [{name: torch.zeros(1)}]}
    with pytest.raises(CheckpointError, match="members\\[0\\]"):
        checkpoint.restore_model(wrong, "e.pt")
    # Bug: a member holding a non-tensor under a valid digest ended in AttributeError, exit 1
    odd = {**payload, "members": [{**payload["members"][0], name: [1.0, 2.0]}]}
    with pytest.raises(CheckpointError, match=f"members\\[0\\].{name} is not a tensor"):
        checkpoint.restore_model(odd, "e.pt")


NETWORK_ONLY = ("--kn-order", "0", "--lr", "0.01")  # the network alone, converging fast


def _train(runner, ck, corpus, *extra):
    r = invoke(runner, ["train", "--corpus", corpus, "--run", "m", "--checkpoint-dir", ck,
                        *TINY_TRAIN, "--eval-every", "5", "--early-stop", "1",
                        "--max-time", "300", "--members", "2", "--json",
                        # the decay follows --max-steps, which these runs change on resume
                        "--decay", "0", *extra])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return r


def _records(ck):
    return [json.loads(x) for x in (ck / "m" / "metrics.jsonl").read_text().splitlines()]


def test_a_run_with_time_left_trains_a_second_member_from_the_first_ones_best(
    runner, corpus_file, tmp_path
):
    # the network alone is judged (this text's count model is near perfect: evaluations
    # would tie), so the first network stops after an evaluation that got worse
    straight = tmp_path / "straight"
    r = _train(runner, straight, corpus_file, *NETWORK_ONLY, "--max-steps", "200")
    assert "member 2: the last network reached its best after about" in r.stderr
    switch = next(rec["step"] for rec in _records(straight) if rec["member"] == 1) - 5
    summary = json.loads(r.stdout)
    best, _, _ = checkpoint.restore_model(checkpoint.load(straight / "m" / "best.pt"), "b")
    assert len(networks(best)) == summary["networks"] == 2  # what the summary says ships
    info = invoke(runner, ["info", "--checkpoint-dir", straight, "--checkpoint", "m", "--json"])
    assert json.loads(info.stdout)["networks"] == summary["networks"]
    gen = invoke(runner, ["generate", "--checkpoint-dir", straight, "--length", "20",
                          "--seed", "1"])  # fmt: skip
    assert gen.exit_code == 0 and len(gen.stdout) > 10
    # the frozen first network is its best weights, not its last: a run stopped where the
    # first network stopped ships exactly those as its best
    first = tmp_path / "first"
    _train(runner, first, corpus_file, *NETWORK_ONLY, "--max-steps", str(switch))
    assert checkpoint.load(first / "m" / "last.pt")["progress"]["best_step"] < switch
    frozen = checkpoint.load(straight / "m" / "last.pt")["model_state"]  # the first network
    for key, value in checkpoint.load(first / "m" / "best.pt")["model_state"].items():
        assert torch.equal(frozen[key], value), key


@pytest.mark.slow
def test_a_second_member_resumes_exactly(runner, corpus_file, tmp_path):
    straight = tmp_path / "straight"
    _train(runner, straight, corpus_file, "--max-steps", "400")
    switch = next(rec["step"] for rec in _records(straight) if rec["member"] == 1) - 5
    # stop 5 steps into member 2, resume 10 steps more == 15 steps more straight
    a, b = tmp_path / "a", tmp_path / "b"
    _train(runner, a, corpus_file, "--max-steps", str(switch + 5))
    _train(runner, a, corpus_file, "--resume", "--max-steps", str(switch + 15))
    _train(runner, b, corpus_file, "--max-steps", str(switch + 15))
    pa, pb = (checkpoint.load(d / "m" / "last.pt") for d in (a, b))
    assert pa["progress"]["member"] == pb["progress"]["member"] == 1
    assert len(pa["members"]) == 1  # the frozen first network and the one in training
    for key in pa["model_state"]:
        assert torch.equal(pa["model_state"][key], pb["model_state"][key]), key
        assert torch.equal(pa["members"][0][key], pb["members"][0][key]), key
    assert math.isclose(pa["progress"]["best_val_ppl"], pb["progress"]["best_val_ppl"])


@pytest.mark.parametrize("limit", [["--members", "1"], ["--max-time", "0"]])
def test_one_member_or_no_budget_trains_one_network(runner, corpus_file, tmp_path, limit):
    r = _train(runner, tmp_path, corpus_file, "--max-steps", "400", *limit)
    assert "member 2" not in r.stderr and json.loads(r.stdout)["networks"] == 1
    assert {rec["member"] for rec in _records(tmp_path)} == {0}
    assert len(checkpoint.load(tmp_path / "m" / "last.pt").get("members") or []) == 0
