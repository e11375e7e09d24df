import itertools

import pytest
import torch

from charlm.data.batching import (
    batches_per_epoch,
    check_enough,
    consecutive_batches,
    random_batches,
)
from charlm.errors import DataError


def gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.mark.parametrize("fn", [random_batches, consecutive_batches])
def test_shapes_and_shift_by_one(fn):
    ids = torch.arange(1000, dtype=torch.int32)
    batches = list(fn(ids, 4, 7, gen()))
    assert len(batches) == batches_per_epoch(1000, 4, 7)
    for x, y in batches:
        assert x.shape == y.shape == (4, 7)
        assert x.dtype == torch.int64
        assert torch.equal(y, x + 1)  # ids are positions, so the shift shows as +1


@pytest.mark.parametrize("fn", [random_batches, consecutive_batches])
def test_same_generator_same_batches_and_start_skips(fn):
    ids = torch.arange(500, dtype=torch.int32)
    a = list(fn(ids, 3, 5, gen(7)))
    b = list(fn(ids, 3, 5, gen(7)))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))
    tail = list(fn(ids, 3, 5, gen(7), start=4))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a[4:], tail, strict=True))


def test_consecutive_streams_continue_across_batches():
    ids = torch.arange(1000, dtype=torch.int32)
    batches = list(consecutive_batches(ids, 4, 10, gen(1)))
    for (x0, _), (x1, _) in itertools.pairwise(batches):
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)


def test_random_windows_do_not_overlap():
    ids = torch.arange(1000, dtype=torch.int32)
    starts = torch.cat([x[:, 0] for x, _ in random_batches(ids, 4, 10, gen(2))])
    assert len(set(starts.tolist())) == len(starts)
    assert len(set((starts % 10).tolist())) == 1  # one random offset per epoch


def test_too_short_names_counts():
    with pytest.raises(DataError) as e:
        check_enough(100, 32, 35)
    assert "100" in str(e.value) and "--batch-size" in str(e.value)
