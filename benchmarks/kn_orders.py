#!/usr/bin/env python3
"""What each count-model order costs and buys, per corpus: one table.

    .venv/bin/python benchmarks/kn_orders.py                         # kjv11 and jay
    .venv/bin/python benchmarks/kn_orders.py --corpora tang --orders 8,12

For each order: the seconds to count the text (the last 1M characters of the training text
less the tune slice, as pick_order counts it), the tables' size, the nats/char it scores on the
tune slice (what pick_order compares), and the milliseconds `distribution` takes for one next
character after a context (what generation asks at every step), averaged over 400 contexts:
from the counted text itself (the longest lookups) and from the tune slice (text it has not
seen, as generated text mostly is). The split is charlm's own (setup.run_data, the default
--val-fraction and --mix-fraction).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from recipe import corpus_path  # noqa: E402

from charlm.config import TrainConfig  # noqa: E402
from charlm.data.corpus import read_corpus  # noqa: E402
from charlm.data.ids_cache import encode_text  # noqa: E402
from charlm.scoring.kneser_ney import KneserNey  # noqa: E402
from charlm.scoring.mixture import kn_logprobs  # noqa: E402
from charlm.scoring.mixture_fit import PICK_CHARS, fit_slice  # noqa: E402
from charlm.training.setup import run_data  # noqa: E402

CONTEXTS = 400


def per_call_ms(kn: KneserNey, ids: torch.Tensor, rng: np.random.Generator) -> float:
    """Mean ms of one kn.distribution over CONTEXTS contexts of ids (order - 1 long each)."""
    width = max(kn.order - 1, 1)
    starts = rng.integers(width, len(ids), CONTEXTS)
    contexts = [ids[s - width : s].tolist() for s in starts]
    t0 = time.perf_counter()
    for c in contexts:
        kn.distribution(c)
    return (time.perf_counter() - t0) / CONTEXTS * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="kjv11,jay")
    ap.add_argument("--orders", default="8,12,16")
    args = ap.parse_args()
    print("| corpus | order | count s | tables MB | tune nats/char | ms seen ctx | ms new ctx |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.corpora.split(","):
            text = read_corpus(str(corpus_path(name, Path(tmp)))).text
            cfg = TrainConfig()  # charlm's own split: held-out tail, then the tune slice
            data = run_data(encode_text(text, "", cfg.val_fraction, None), {}, cfg)
            vocab = len(data.vocab)
            fit, tune = data.train_ids[-PICK_CHARS:], data.tune_ids
            scored = fit_slice(tune, fit, vocab)
            for order in (int(o) for o in args.orders.split(",")):
                t0 = time.perf_counter()
                kn = KneserNey(fit, vocab, order)
                build = time.perf_counter() - t0
                mb = sum(k.nbytes + c.nbytes for k, c in zip(kn.keys, kn.counts, strict=True))
                nats = -float(kn_logprobs(kn, scored).mean())
                rng = np.random.default_rng(0)
                seen, new = per_call_ms(kn, fit, rng), per_call_ms(kn, tune, rng)
                print(f"| {name} | {order} | {build:.1f} | {mb / 1e6:.0f} | {nats:.4f} | "
                      f"{seen:.2f} | {new:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
