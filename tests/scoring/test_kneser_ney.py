import math

import numpy as np
import pytest
import torch

from charlm.data.vocab import UNK_ID
from charlm.scoring.adapt import Adaptation
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.mixture import from_payload, mix_logprobs, to_payload
from charlm.scoring.mixture_fit import fit_weight

IDS = [1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 5, 1, 2, 3, 6, 2, 3, 1]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distribution_sums_to_one_and_matches_prob(order):
    kn = KneserNey(IDS, vocab_size=8, order=order)
    for ctx in ([], [1], [1, 2], [7, 7], [5, 1, 2]):
        p = kn.distribution(ctx)
        assert p.shape == (8,) and math.isclose(p.sum(), 1.0, rel_tol=1e-12)
        assert (p > 0).all()
        for w in range(8):
            assert math.isclose(p[w], kn.prob(ctx, w), rel_tol=1e-12)


def test_longer_context_sharpens_and_unknown_gets_good_turing_mass():
    kn = KneserNey(IDS, vocab_size=100, order=3)
    assert kn.prob([1, 2], 3) > kn.prob([2], 3) > kn.prob([], 3)
    singles = sum(1 for w in set(IDS) if IDS.count(w) == 1)
    assert math.isclose(kn.unk_mass, singles / len(IDS))
    assert kn.prob([], UNK_ID) > kn.prob([], 70)  # an unseen known id gets less than <unk>


def test_log_probs_shape():
    kn = KneserNey(IDS, vocab_size=8, order=3)
    lp = kn.log_probs([1, 2, 3, 7])
    assert lp.shape == (3,) and np.all(lp < 0)


def test_fit_weight_recovers_the_better_model():
    torch.manual_seed(0)
    good = torch.full((500,), math.log(0.5))
    bad = torch.full((500,), math.log(0.01))
    assert fit_weight(good, bad) > 0.99
    assert fit_weight(bad, good) < 0.01
    mixed = mix_logprobs(good, bad, 0.5)
    assert torch.allclose(mixed, torch.log(torch.tensor(0.255)).expand(500).to(mixed.dtype))


def test_payload_round_trip_is_a_read_of_the_same_tables():
    kn = KneserNey(IDS, 8, 3)
    block = to_payload(kn, weight=0.7, adaptation=Adaptation((0.0, 0.1, 0.8), (1,)))
    assert all(isinstance(k, torch.Tensor) for k in block["keys"] + block["counts"])
    m = from_payload(block, vocab_size=8)
    assert m.weight == 0.7 and m.kn.order == 3
    assert m.adaptation == Adaptation((0.0, 0.1, 0.8), (1,))
    assert from_payload({**block, "adapt": None}, vocab_size=8).adaptation is None
    assert np.array_equal(m.kn.log_probs(IDS), kn.log_probs(IDS))
    legacy = from_payload({"order": 3, "weight": 0.7, "ids": torch.tensor(IDS)}, 8)  # format 1
    assert np.array_equal(legacy.kn.log_probs(IDS), kn.log_probs(IDS))
    with pytest.raises(ValueError, match="vocab"):
        from_payload(block, vocab_size=9)
    bad = {**block, "keys": [block["keys"][0], block["keys"][1].flip(0), block["keys"][2]]}
    with pytest.raises(ValueError, match="sorted"):
        from_payload(bad, vocab_size=8)


@pytest.mark.parametrize("seed", range(6))
def test_equals_the_dict_reference_implementation(seed):
    """The array tables give the same probabilities as the first (dict) implementation."""
    from .kn_reference import ReferenceKneserNey

    rng = np.random.default_rng(seed)
    for _ in range(8):
        n, v, order = int(rng.integers(0, 80)), int(rng.integers(2, 9)), int(rng.integers(1, 7))
        ids = rng.integers(seed % 2, v, n).tolist()
        ours, ref = KneserNey(ids, v, order), ReferenceKneserNey(ids, v, order)
        assert ours.discounts == pytest.approx(ref.discounts, abs=0)
        assert ours.unk_mass == ref.unk_mass
        text = rng.integers(0, v, 40).tolist()
        np.testing.assert_allclose(ours.log_probs(text), ref.log_probs(text), rtol=1e-13)
        contexts = [[], text[:1], text[3:9], ids[-5:], ids[:order]]
        want = np.stack([ref.distribution(c) for c in contexts])
        batched = ours.distributions(contexts)
        np.testing.assert_allclose(batched, want, rtol=1e-13, atol=1e-16)
        # one context at a time (generation's path) gives the very same floats
        np.testing.assert_array_equal(np.stack([ours.distribution(c) for c in contexts]), batched)


def test_a_text_without_singletons_gives_nothing_probability_zero():
    kn = KneserNey([1, 2] * 50, vocab_size=4, order=3)  # every n-gram seen many times
    assert min(kn.discounts[1:]) >= 0.1
    assert (kn.distribution([1, 2]) > 0).all() and np.isfinite(kn.log_probs([1, 3, 3, 1])).all()


def test_values_computed_by_hand():
    """Text 1 2 1 2 1 3, order 2, vocabulary {<unk>, 1, 2, 3}:
    bigram counts (1,2)=2 (2,1)=2 (1,3)=1 -> n1=1, n2=2, D2 = 1/(1+2*2) = 0.2;
    continuation counts of 1, 2, 3 are all 1 -> D1 = 1 and p1 = p0 = 1/3 each;
    <unk> gets the Good-Turing mass 1/6 (one character seen once in six) after any context,
    the known characters 5/6 of their model:
    p(2|1) = 5/6 * (1/3 * D2 * 2 types / 3 + (2 - 0.2) / 3) = 5/18 * 2/15 + 0.5."""
    kn = KneserNey([1, 2, 1, 2, 1, 3], vocab_size=4, order=2)
    assert kn.discounts[2] == pytest.approx(0.2) and kn.discounts[1] == pytest.approx(1.0)
    assert kn.unk_mass == pytest.approx(1 / 6)
    back = 5 / 18 * 2 / 15
    assert kn.prob([1], 2) == pytest.approx(back + 5 / 6 * 1.8 / 3, rel=1e-12)
    assert kn.prob([1], 3) == pytest.approx(back + 5 / 6 * 0.8 / 3, rel=1e-12)
    assert kn.prob([1], 1) == pytest.approx(back, rel=1e-12)
    assert kn.prob([1], UNK_ID) == pytest.approx(1 / 6, rel=1e-12)
    assert kn.prob([3], 2) == pytest.approx(5 / 18, rel=1e-12)  # unseen context: p1
    assert kn.log_probs([1, 2, 1]) == pytest.approx(
        [math.log(back + 0.5), math.log(kn.prob([2], 1))]
    )


def test_the_unknown_symbol_keeps_its_good_turing_mass_in_every_context():
    """A text without <unk>: a new character's chance is the same after any context (it does
    not fall with each order the context was seen at); the known characters share the rest."""
    kn = KneserNey(IDS, vocab_size=8, order=4)
    for ctx in ([], [1], [1, 2], [1, 2, 3], [7, 7, 7]):
        p = kn.distribution(ctx)
        assert p[UNK_ID] == pytest.approx(kn.unk_mass) and p.sum() == pytest.approx(1.0)
    assert np.exp(kn.log_probs([1, 2, 3, UNK_ID]))[-1] == pytest.approx(kn.unk_mass)
    # a text that holds <unk> (a capped vocabulary) counts it as any other character
    held = KneserNey([UNK_ID if i == 5 else i for i in IDS], vocab_size=8, order=4)
    assert held.distribution([3])[UNK_ID] != pytest.approx(held.unk_mass)
