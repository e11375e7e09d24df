"""members.py: when a stopped network may be followed by a fresh one."""

import time
from types import SimpleNamespace

import pytest

from charlm.config import TrainConfig
from charlm.system.distributed import Dist
from charlm.training.members import may_grow, room_for_member


def prog(member=0, best_step=40, member_start_step=0, elapsed_s=100.0, member_start_s=0.0, step=40):
    return SimpleNamespace(member=member, best_step=best_step, elapsed_s=elapsed_s, step=step,
                           member_start_step=member_start_step,
                           member_start_s=member_start_s)  # fmt: skip


BUDGET = TrainConfig(max_time=600, members=3, decay=0.5)


def test_only_a_budgeted_run_within_members_after_a_network_that_helped_may_grow():
    assert may_grow(BUDGET, prog(), has_best=True)
    assert not may_grow(TrainConfig(members=3), prog(), has_best=True)  # no --max-time
    assert not may_grow(BUDGET, prog(member=2), has_best=True)  # the third of 3 is the last
    assert may_grow(BUDGET, prog(member=1, member_start_step=20), has_best=True)
    # a network that never improved what ships (its best is from before it started)
    assert not may_grow(BUDGET, prog(best_step=20, member_start_step=20), has_best=True)
    assert not may_grow(BUDGET, prog(), has_best=False)


@pytest.mark.parametrize(("left", "room"), [(55.0, True), (45.0, False)])
def test_a_new_member_needs_half_the_time_the_last_took_to_its_best(left, room):
    """The last network trained from 50 s to 150 s, at its best at its last evaluation:
    another needs 50 s left."""
    deadline = time.monotonic() + left
    last = prog(elapsed_s=150.0, member_start_s=50.0, best_step=40, step=40)
    assert room_for_member(BUDGET, last, SimpleNamespace(best={}), Dist(), deadline) == room


@pytest.mark.parametrize(("left", "room"), [(35.0, True), (25.0, False)])
def test_the_patience_after_the_best_is_not_counted(left, room):
    """The last network trained 100 s, 60 of its 100 steps (60 s) to its best, then waited
    out the plateau rule: another needs 30 s left, not 50."""
    deadline = time.monotonic() + left
    last = prog(elapsed_s=150.0, member_start_s=50.0, member_start_step=100, best_step=160,
                step=200)  # fmt: skip
    assert room_for_member(BUDGET, last, SimpleNamespace(best={}), Dist(), deadline) == room


def test_the_average_scores_each_frozen_member_once_and_the_training_network_each_time():
    import math

    import torch

    from charlm.config import ModelConfig
    from charlm.training.members import Members

    members = Members(ModelConfig(vocab_size=5, embed=4, hidden=8), "cpu")
    current = torch.log(torch.full((3,), 0.5))
    assert members.average("held-out", torch.zeros(4), current, None) is current  # none yet
    calls = []

    def score(net, ids):
        calls.append(net)
        return torch.log(torch.full((3,), 0.1))

    members.add({k: v.clone() for k, v in members_state().items()})
    assert not any(p.requires_grad for p in members.frozen[0].parameters())  # no grads kept
    for _ in range(2):
        mean = members.average("held-out", torch.zeros(4), current, score)
        assert torch.allclose(mean, torch.full((3,), math.log(0.3)))  # (0.1 + 0.5) / 2
    assert len(calls) == 1  # frozen: scored once, then kept


def members_state():
    from charlm.config import ModelConfig
    from charlm.models.charrnn import CharRNN

    return CharRNN(ModelConfig(vocab_size=5, embed=4, hidden=8), "cpu").state_dict()


def test_no_new_member_inside_the_decay():
    deadline = time.monotonic() + 1000
    members = SimpleNamespace(best={})
    assert room_for_member(BUDGET, prog(), members, Dist(), deadline, done=0.4)
    assert not room_for_member(BUDGET, prog(), members, Dist(), deadline, done=0.5)


def test_each_member_has_a_seed_of_its_own_within_the_seed_range():
    from charlm.training.members import new_member_seed

    seeds = {new_member_seed(5, k) for k in range(1, 16)}
    assert len(seeds) == 15 and 5 not in seeds
    top = 2**63 - 1  # the largest --seed: member seeds wrap, staying valid seeds
    assert all(0 <= new_member_seed(top, k) < 2**63 for k in range(1, 16))
    assert new_member_seed(top, 1) == 7918
