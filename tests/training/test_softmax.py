"""softmax.py: where the two-level softmax's clusters split, and when auto uses one."""

import itertools

import numpy as np
import pytest

from charlm.errors import UsageError
from charlm.training import softmax
from charlm.training.softmax import choose_cutoffs, cutoffs_for, expected_scores


def zipf(v: int, s: float = 1.1) -> np.ndarray:
    """Counts of v ids in count order, as a character vocabulary's are."""
    return np.floor(1e7 / np.arange(1, v + 1) ** s).astype(np.int64)


def test_expected_scores_counts_the_head_cluster_scores_and_each_tail_times_its_chance():
    probs = np.array([0.5, 0.3, 0.1, 0.1])
    assert expected_scores(probs, ()) == 4
    # head: ids 0-1 and one cluster score; the tail (ids 2-3) is scored 20 % of the time
    assert expected_scores(probs, (2,)) == pytest.approx(2 + 1 + 0.2 * 2)


def test_the_search_finds_the_grid_s_cheapest_split(monkeypatch):
    monkeypatch.setattr(softmax, "MAX_TAILS", 2)
    counts = zipf(3000)
    probs = counts / counts.sum()
    grid = sorted({round(g) for g in np.geomspace(2, 2999, softmax.GRID)} - {3000})
    brute = min(
        [(expected_scores(probs, (a,)), (a,)) for a in grid]
        + [(expected_scores(probs, (a, b)), (a, b)) for a, b in itertools.combinations(grid, 2)]
    )
    cuts = choose_cutoffs(counts)
    assert expected_scores(probs, cuts) == pytest.approx(brute[0])


def test_a_big_vocabulary_gets_two_levels_and_a_note_that_says_why():
    counts = zipf(7000)
    cuts, note = cutoffs_for(None, counts)
    saving = 7000 / expected_scores(counts / counts.sum(), cuts)
    assert 1 <= len(cuts) <= softmax.MAX_TAILS and saving >= softmax.MIN_SAVING
    assert note and "two-level softmax" in note and "--softmax full" in note
    assert cutoffs_for("full", counts) == ((), None)  # explicit options win


def test_a_small_vocabulary_keeps_one_softmax_unless_asked():
    english = zipf(73)
    assert cutoffs_for("auto", english) == ((), None)
    assert cutoffs_for("adaptive", english)[0]  # asked for: it gets one
    assert cutoffs_for("auto", zipf(softmax.MIN_VOCAB - 1)) == ((), None)
    assert cutoffs_for("auto", zipf(softmax.MIN_VOCAB))[0]


def test_an_unknown_softmax_is_a_usage_error():
    with pytest.raises(UsageError, match="--softmax"):
        cutoffs_for("hierarchical", zipf(10))


def test_two_levels_pay_only_where_auto_and_the_budget_finds_the_model_short_of_compute():
    from charlm.training.softmax import two_levels_pay

    assert two_levels_pay(None, (5, 20), 3.0) and two_levels_pay("auto", (5,), 19.9)
    assert not two_levels_pay(None, (5, 20), 40.0)  # read over and over: short of text
    assert not two_levels_pay(None, (5, 20), None)  # no budget: nothing sized it
    assert not two_levels_pay(None, (), 3.0)  # the vocabulary did not ask for them
    assert not two_levels_pay("full", (5,), 3.0) and not two_levels_pay("adaptive", (5,), 3.0)


@pytest.fixture
def big_vocabulary(tmp_path):
    """30k characters over 1,500 distinct, Zipf-distributed (a Chinese text's shape)."""
    rnd = np.random.default_rng(0)
    chars = np.array([chr(0x4E00 + i) for i in range(1500)])
    p = 1 / np.arange(1, 1501) ** 1.1
    text = "".join(rnd.choice(chars, size=30_000, p=p / p.sum()))
    path = tmp_path / "big.txt"
    path.write_text("\n".join(text[i : i + 30] for i in range(0, len(text), 30)), "utf-8")
    return path


@pytest.mark.parametrize(
    ("speed", "softmax", "two_level"),
    [(1.0, None, True), (1e9, None, False), (1.0, "full", False), (1e9, "adaptive", True)],
)
def test_the_budget_decides_auto_and_an_explicit_softmax_wins(
    monkeypatch, tmp_path, big_vocabulary, speed, softmax, two_level
):
    """Slow (the model reads its text a fraction of a time): auto takes two levels and says
    so; fast (thousands of passes): one softmax. --softmax given is kept either way."""
    import torch

    import charlm.training.sizing
    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare

    seen = []

    def fake(m, *_):
        seen.append(m.cutoffs)
        return speed

    monkeypatch.setattr(charlm.training.sizing, "measure_speed", fake)
    opts = TrainOptions(corpus=str(big_vocabulary), batch_size=4, seq_len=8, max_time=10.0,
                        softmax=softmax)  # fmt: skip
    setup = prepare(opts, tmp_path / "ck", torch.device("cpu"), echo=lambda s: None)
    assert bool(setup.model_config.cutoffs) == two_level
    said = any(n.startswith("two-level softmax") for n in setup.notes)
    assert said == (two_level and softmax is None)
    if two_level and softmax is None:  # sized once with one softmax, then with two levels
        assert seen[0] == () and seen[-1] == setup.model_config.cutoffs
