"""The count model's order: chosen on the tune slice unless given (mixture.pick_order)."""

import json
import random

import torch

from charlm.scoring.mixture import KN_ORDERS, pick_order
from charlm.store import checkpoint
from tests.conftest import TINY_TRAIN, invoke


def long_memory_text(n: int = 3000, seed: int = 0) -> str:
    """Phrases that share their last 9 characters before the one that differs: only a
    context reaching back 10 characters or more tells what comes next."""
    rnd = random.Random(seed)
    phrases = ["a" + "bcdefghij" + "X", "z" + "bcdefghij" + "Y", "q" + "bcdefghij" + "W"]
    return "".join(rnd.choice(phrases) + " " for _ in range(n))


def test_a_text_whose_next_character_hangs_on_a_long_context_gets_the_higher_order():
    ids = torch.tensor([ord(c) % 64 for c in long_memory_text()])
    fit, tune = ids[:-4000], ids[-4000:]
    order, nats = pick_order(fit, tune, 64)
    assert set(nats) == set(KN_ORDERS)
    assert order == max(KN_ORDERS) and nats[order] < nats[min(KN_ORDERS)] - 0.01


def _train(runner, tmp_path, run, *extra):
    corpus = tmp_path / "long.txt"
    corpus.write_text(long_memory_text(), encoding="utf-8")
    args = ["train", "--corpus", corpus, "--run", run, "--checkpoint-dir", tmp_path,
            *TINY_TRAIN, "--max-steps", "2", *extra]  # fmt: skip
    r = invoke(runner, args)
    assert r.exit_code == 0, r.output
    payload = checkpoint.load(tmp_path / run / "best.pt")
    return r, json.loads(json.dumps(payload["train_config"]))["kn_order"]


def test_train_picks_the_order_says_so_and_keeps_one_given(runner, tmp_path):
    r, order = _train(runner, tmp_path, "auto")
    assert order == 12 and "count model of order 12" in r.output
    r, order = _train(runner, tmp_path, "given", "--kn-order", "8")
    assert order == 8 and "count model of order" not in r.output
