"""The tune slice is scored as unseen text is: characters its fit text lacks are <unk>."""

import math

import numpy as np
import torch

from charlm.data.vocab import UNK_ID
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.mixture_fit import FIT_CHARS, MixtureFit, fit_slice, pick_order

FIT = torch.tensor([1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3, 4] * 20, dtype=torch.int16).to(torch.uint16)
TUNE = torch.tensor([1, 2, 3, 6, 1, 2, 3, 4, 6, 7, 1, 2], dtype=torch.uint16)  # 6, 7: new


def test_characters_the_fit_text_lacks_become_unk_and_nothing_else_changes():
    before = TUNE.clone()
    out = fit_slice(TUNE, FIT, vocab=8)
    assert out.dtype == TUNE.dtype and torch.equal(TUNE, before)  # a new tensor, same dtype
    want = [UNK_ID if t in (6, 7) else t for t in TUNE.tolist()]
    assert out.tolist() == want
    long = torch.arange(FIT_CHARS + 10, dtype=torch.int64) % 5 + 1
    assert len(fit_slice(long, FIT, vocab=8)) == FIT_CHARS + 1


def test_the_weight_fit_scores_new_characters_as_unk_and_the_shipped_count_model_knows_them():
    mf = MixtureFit(FIT, TUNE, order=3, vocab=8)
    assert mf.tune_ids.tolist().count(UNK_ID) == 3
    unk = np.log(KneserNey(FIT, 8, 3).unk_mass)
    new_at = [i - 1 for i, t in enumerate(TUNE.tolist()) if t in (6, 7)]
    # scored as the held-out split scores an unseen character: the Good-Turing mass
    assert np.allclose(mf.tune_kn_logp.numpy()[new_at], unk)
    # the count model that ships counted the tune slice as it is: it knows 6 after 1 2 3
    raw = KneserNey(torch.cat([FIT, TUNE]), 8, 3)
    assert np.array_equal(mf.kn.log_probs(TUNE), raw.log_probs(TUNE))
    assert mf.kn.prob([1, 2, 3], 6) > 2 * KneserNey(FIT, 8, 3).prob([1, 2, 3], 6)


def test_pick_order_scores_the_tune_slice_the_same_way():
    order, nats = pick_order(FIT, TUNE, 8, orders=(2, 3))
    kn = KneserNey(FIT, 8, 2)
    mapped = fit_slice(TUNE, FIT, 8)
    assert math.isclose(nats[2], -float(kn.log_probs(mapped).mean()), rel_tol=1e-9)
    assert order in (2, 3)
