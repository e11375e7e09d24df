"""The count model's order: chosen on the tune slice unless given (mixture_fit.pick_order)."""

import json
import random

import torch

from charlm.scoring.mixture_fit import KN_ORDERS, ORDER_GAIN, pick_order
from charlm.store import checkpoint
from tests.conftest import TINY_TRAIN, invoke


def long_memory_text(n: int = 3000, seed: int = 0, shared: str = "bcdefghij") -> str:
    """Phrases that share their last len(shared) characters before the one that differs:
    only a context reaching back len(shared) + 1 characters or more tells what comes next."""
    rnd = random.Random(seed)
    phrases = ["a" + shared + "X", "z" + shared + "Y", "q" + shared + "W"]
    return "".join(rnd.choice(phrases) + " " for _ in range(n))


def _pick(text: str) -> tuple[int, dict[int, float]]:
    ids = torch.tensor([ord(c) % 64 for c in text])
    return pick_order(ids[:-4000], ids[-4000:], 64)


def test_a_text_whose_next_character_hangs_on_a_long_context_gets_the_higher_order():
    order, nats = _pick(long_memory_text())  # 10 characters of context needed
    assert order == 12 and nats[12] < nats[8] - 0.01
    # 16 was counted (12 paid for itself) but buys nothing more here
    assert set(nats) == set(KN_ORDERS) and nats[16] > nats[12] - ORDER_GAIN


def test_the_orders_rise_while_they_pay_and_stop_at_the_first_that_does_not():
    # half the phrases need 10 characters of context (12 pays), half 14 (only 16 sees them)
    tens = long_memory_text(1500, 1).split(" ")
    fourteens = long_memory_text(1500, 2, "BCDEFGHIJKLMN").split(" ")
    text = "".join(a + b for a, b in zip(tens, fourteens, strict=True))
    order, nats = _pick(text)
    assert order == 16 and nats[16] < nats[12] - 0.01 and nats[12] < nats[8] - 0.01
    order, nats = _pick(long_memory_text(shared="bcd"))  # 5 needed: 8 is enough
    assert order == 8 and set(nats) == {8, 12}  # 12 did not pay, so 16 was never counted


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
