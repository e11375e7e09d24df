"""members.py: when a stopped network may be followed by a fresh one."""

import time
from types import SimpleNamespace

import pytest

from charlm.config import TrainConfig
from charlm.system.distributed import Dist
from charlm.training.members import may_grow, room_for_member


def prog(member=0, best_step=40, member_start_step=0, elapsed_s=100.0, member_start_s=0.0):
    return SimpleNamespace(member=member, best_step=best_step, elapsed_s=elapsed_s,
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


@pytest.mark.parametrize(("left", "room"), [(130.0, True), (110.0, False)])
def test_a_new_member_needs_a_fifth_more_time_than_the_last_took(left, room):
    """The last network took 100 s: another needs 120 s left (1.2 times as long)."""
    deadline = time.monotonic() + left
    assert room_for_member(BUDGET, prog(), SimpleNamespace(best={}), Dist(), deadline) == room


def test_no_new_member_inside_the_decay():
    deadline = time.monotonic() + 1000
    members = SimpleNamespace(best={})
    assert room_for_member(BUDGET, prog(), members, Dist(), deadline, done=0.4)
    assert not room_for_member(BUDGET, prog(), members, Dist(), deadline, done=0.5)
